"""Cross-dataset generalization on two small folder benchmarks, checked against predictions made by hand."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from manifpt_core import steps
from manifpt_core.attribution import load_attributor, predict
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError
from manifpt_core.names import Method
from manifpt_core.steps.attribute import train_attributors
from manifpt_core.steps.cross import cross_dataset
from manifpt_core.store import Store, cross_dataset_dir, open_array

MODELS = ["alpha", "beta"]
DATASETS = ("bench_a", "bench_b")


def folder_settings(root, dataset):
    return settings_from_dict({
        "profile": "test",
        "dataset": dataset,
        "source": {"kind": "folder", "path": str(root)},
        "n_reference": 120,
        "n_real_class": 60,
        "zoo": [],
        "spaces": ["rgb"],
        "artifacts": {"kinds": ["nearest"]},
        "attributor": {"epochs": 8, "patience": 8, "batch_size": 16, "widths": [8, 16], "mlp_hidden": [32]},
        "seeds": [0, 1],
        # The cross-dataset step reads the attributors and the control only: no baselines, robustness or open set.
        "baselines": {"methods": []},
        "robustness": {"perturbations": []},
        "open_set_holdout": "none",
        "chunk_rows": 16,
        "block_rows": 32,
        "device": "cpu",
    })


@pytest.fixture(scope="module")
def built(tmp_path_factory, benchmark_factory):
    """Two datasets of the same models (alpha, beta) on different real images, under one store root."""
    root = tmp_path_factory.mktemp("store")
    stores, settings = [], []
    for seed, name in enumerate(DATASETS):
        folder = benchmark_factory(tmp_path_factory.mktemp(name), seed=seed)
        stores.append(Store(root, name))
        settings.append(folder_settings(folder, name))
        steps.run_pipeline(stores[-1], settings[-1], MODELS)
    return stores, settings


def split_by_hand(store, method, source):
    """A source's test-split inputs read straight from the store: raw images, or rgb artifacts as images."""
    split = np.asarray(pq.read_table(store.paths.source_manifest(source), columns=["split"]).column("split").to_pylist())
    if method == "raw":
        return (open_array(store.paths.images(source))[:].astype(np.float32) / np.float32(255.0))[split == "test"]
    path = store.paths.artifacts("rgb", source)
    rows = open_array(path, "query_row")[:]
    return open_array(path, "artifact")[:].reshape(len(rows), 1, 12, 12)[split[rows] == "test"]


def accuracies_by_hand(train, test, method, train_models, classes):
    """Per seed: the train dataset's attributor on the test dataset's samples of ``classes``, labels by name."""
    trained_on = ["real", *sorted(train_models)]
    xs = [split_by_hand(test, method, name) for name in classes]
    y = np.concatenate([np.full(len(x), trained_on.index(name)) for x, name in zip(xs, classes)])
    x = np.concatenate(xs)
    return [float(np.mean(predict(load_attributor(train.method_dir(Method.parse(method)) / f"seed{seed}.pt"), x) == y))
            for seed in (0, 1)], len(y)


def check_rows(rows, stores, models):
    by_name = {s.dataset: s for s in stores}
    assert {(r["train"], r["test"]) for r in rows} == {("bench_a", "bench_b"), ("bench_b", "bench_a")}
    assert {r["method"] for r in rows} == {"rgb", "raw"}
    for row in rows:
        classes = ["real", *sorted(set(models[row["train"]]) & set(models[row["test"]]))]
        assert row["classes"] == classes
        expected, n = accuracies_by_hand(by_name[row["train"]], by_name[row["test"]], row["method"],
                                         models[row["train"]], classes)
        assert [s["accuracy"] for s in row["per_seed"]] == expected
        assert row["n_test"] == n > 0
        assert row["accuracy_mean"] == pytest.approx(np.mean(expected))
        assert row["accuracy_std"] == pytest.approx(np.std(expected, ddof=1))
        own = by_name[row["train"]].attributor(Method.parse(row["method"]))
        assert row["in_dataset_mean"] == own.accuracy_mean


def test_cross_dataset_equals_predictions_by_hand_then_reuses(built):
    stores, settings = built
    models = {name: MODELS for name in DATASETS}
    first = cross_dataset(stores, settings, models)
    assert first.path == cross_dataset_dir(stores[0].root) and not first.reused
    report = json.loads((first.path / "report.json").read_text())
    check_rows(report["rows"], stores, models)
    assert all(r["dropped_models"] == [] and r["n_dropped"] == 0 for r in report["rows"])
    md = (first.path / "report.md").read_text()
    assert "| method | bench_a → bench_b | bench_b → bench_a |" in md
    assert " ± " in md.split("| rgb |")[1].splitlines()[0]

    second = cross_dataset(stores, settings, models)
    assert second.reused and second.content_hash == first.content_hash and second.summary == first.summary


def test_different_model_lists_match_classes_by_name(built, tmp_path):
    """bench_b knows only beta: its labels are (real, beta), bench_a's (real, alpha, beta)."""
    stores, settings = built
    shutil.copytree(stores[0].root, tmp_path / "store", symlinks=True)
    copies = [Store(tmp_path / "store", s.dataset) for s in stores]
    for method in ("rgb", "raw"):
        train_attributors(copies[1], settings[1], Method.parse(method), ["beta"])
    models = {"bench_a": MODELS, "bench_b": ["beta"]}
    report = json.loads((cross_dataset(copies, settings, models).path / "report.json").read_text())
    check_rows(report["rows"], copies, models)
    for row in report["rows"]:
        assert row["classes"] == ["real", "beta"]
        if row["train"] == "bench_b":  # bench_a's alpha samples have no label in bench_b's attributor
            alpha = pq.read_table(copies[0].paths.source_manifest("alpha"), columns=["split"]).column("split").to_pylist()
            assert row["dropped_models"] == ["alpha"] and row["n_dropped"] == alpha.count("test") > 0
        else:
            assert row["dropped_models"] == []


def test_refuses_one_dataset_and_disjoint_models(built):
    stores, settings = built
    with pytest.raises(InputError, match="at least 2 datasets"):
        cross_dataset(stores[:1], settings[:1], {"bench_a": MODELS})
    with pytest.raises(InputError, match="share no generative model"):
        cross_dataset(stores, settings, {"bench_a": ["alpha"], "bench_b": ["beta"]})
