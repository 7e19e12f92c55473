"""The pipeline's steps end to end on a small folder benchmark, checked against brute force."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from manifpt_core import steps
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError
from manifpt_core.projection import project_to_span
from manifpt_core.store import Store, open_array
from manifpt_core.store.layout import FILE_HASHES_DIR

MODELS = ["alpha", "beta"]


def folder_settings(root, **overrides):
    data = {
        "profile": "test",
        "dataset": "bench",
        "source": {"kind": "folder", "path": str(root)},
        "n_reference": 120,
        "n_real_class": 60,
        "zoo": [],
        "attributor": {"epochs": 8, "patience": 8, "batch_size": 16, "widths": [8, 16], "mlp_hidden": [32]},
        "encoders": {"sl": {"steps": 10, "batch_size": 32}, "ssl": {"steps": 10, "batch_size": 32}},
        "artifacts": {"kinds": ["nearest", "knn"], "knn_k": 4},
        "baselines": {"nataraj_levels": 16},
        "chunk_rows": 16,
        "block_rows": 32,
        "device": "cpu",
    }
    data.update(overrides)
    return settings_from_dict(data)


def run_all(store, settings):
    return steps.run_pipeline(store, settings, MODELS)


@pytest.fixture(scope="module")
def built(tmp_path_factory, benchmark_factory):
    root = benchmark_factory(tmp_path_factory.mktemp("bench"))
    settings = folder_settings(root)
    store = Store(tmp_path_factory.mktemp("store"), "bench")
    return root, settings, store, run_all(store, settings)


def test_real_split_is_disjoint_reference_first(built):
    _, settings, store, outcomes = built
    real = outcomes[0].summary
    assert real.n_reference == 120 and real.n_real_class == 60
    table = __import__("pyarrow.parquet", fromlist=["x"]).read_table(store.paths.source_manifest("real")).to_pydict()
    assert table["split"][:120] == ["reference"] * 120
    assert set(table["split"][120:]) == {"train", "val", "test"}
    assert not set(table["content_hash"][:120]) & set(table["content_hash"][120:])
    assert len(set(table["path"])) == 180


@pytest.mark.parametrize("space", ["rgb", "freq", "sl", "ssl"])
@pytest.mark.parametrize("source", ["real", "alpha"])
def test_stored_artifacts_equal_brute_force(built, space, source):
    _, _, store, _ = built
    n_ref = 120
    real_emb = open_array(store.paths.embeddings(space, "real"))[:]
    reference = real_emb[:n_ref]
    queries = real_emb[n_ref:] if source == "real" else open_array(store.paths.embeddings(space, source))[:]
    d2 = ((queries[:, None, :].astype(np.float64) - reference[None]) ** 2).sum(-1)
    expected_id = d2.argmin(1)
    path = store.paths.artifacts(space, source)
    np.testing.assert_array_equal(open_array(path, "nn_id")[:], expected_id)
    np.testing.assert_array_equal(open_array(path, "artifact")[:], queries - reference[expected_id])
    np.testing.assert_allclose(open_array(path, "nn_dist")[:], np.sqrt(d2.min(1)), rtol=1e-5)
    rows = open_array(path, "query_row")[:]
    if source == "real":  # real class rows only, and never a reference row as its own neighbour
        np.testing.assert_array_equal(rows, np.arange(n_ref, 180))
        assert np.all(open_array(path, "nn_id")[:] < n_ref)
    # knn: the 4 nearest references, and x minus its projection onto their span
    knn_ids = open_array(path, "knn_ids")[:]
    np.testing.assert_array_equal(knn_ids, np.argsort(d2, axis=1, kind="stable")[:, :4])
    expected = queries - project_to_span(queries, reference[knn_ids], reg=1e-3)
    np.testing.assert_allclose(open_array(path, "knn_artifact")[:], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(open_array(path, "knn_dist")[:], np.linalg.norm(expected, axis=1), rtol=1e-4, atol=1e-5)
    assert np.all(open_array(path, "knn_dist")[:] <= open_array(path, "nn_dist")[:] + 1e-4)


def stored_files(root):
    """Every stored file under ``root`` (not the observation's disposable file hash cache) with what a rewrite
    would change: inode (a new file renamed over it), modification time (written in place) and size."""
    return {path: (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            for path in sorted(Path(root).rglob("*")) if path.is_file() and FILE_HASHES_DIR not in path.parts
            for stat in [path.stat()]}


def test_second_materialization_reuses_the_store(built):
    _, settings, store, first = built
    before = stored_files(store.root)
    second = run_all(store, settings)
    assert all(o.reused for o in second)
    assert [o.content_hash for o in second] == [o.content_hash for o in first]
    # reused means read, not recomputed: no stored file was written again, none added or removed
    assert before and stored_files(store.root) == before


def test_chunk_and_block_size_do_not_change_results(built, tmp_path):
    root, _, store, first = built
    other = Store(tmp_path, "bench")
    settings = folder_settings(root, chunk_rows=8, block_rows=8)
    steps.ingest_real(other, settings)
    for model in MODELS:
        steps.materialize_generator(other, settings, model)
        steps.ingest_generated(other, settings, model)
    for space in ("freq", "ssl"):
        steps.materialize_space(other, settings, space)
        for source in ["real", "alpha"]:
            steps.embed_source(other, settings, space, source)
        steps.build_index(other, settings, space)
        for source in ["real", "alpha"]:
            a = steps.materialize_artifacts(other, settings, space, source)
            assert open_array(a.path, "artifact").chunks[0] == 8
            b = store.paths.artifacts(space, source)
            stored = store.source(source).artifacts(space).record
            for name in ("nn_id", "knn_ids"):
                np.testing.assert_array_equal(open_array(a.path, name)[:], open_array(b, name)[:])
            if space == "freq":  # a fixed transform: bit for bit
                assert a.content_hash == stored.content_hash
            else:  # an encoder: batches of another size may round differently in the last bits
                np.testing.assert_allclose(open_array(a.path, "artifact")[:], open_array(b, "artifact")[:], atol=1e-4)


def test_report_has_every_entry(built):
    _, settings, store, _ = built
    report = json.loads((store.paths.reports / "report.json").read_text())
    methods = [row["method"] for row in report["main_table"]]
    baselines = ["mccloskey", "nataraj", "durall-lr", "durall-svm", "dzanic", "raw-blurjpeg"]
    assert [row["key"] for row in report["main_table"]] == [*map(str, settings.methods), "raw",
                                                            *(f"baseline:{b}" for b in baselines)]
    assert methods[:2] == ["artifacts (rgb, nearest)", "artifacts (rgb, k-NN projection, k=4)"]
    assert {row["network"] for row in report["main_table"]} == {"resnet", "mlp", "linear-svm", "logistic", "knn", "cnn"}
    # every row is tested on the same samples: the same per-class totals in every confusion matrix
    totals = {tuple(np.asarray(row["confusion"]).sum(axis=1)) for row in report["main_table"]}
    assert len(totals) == 1
    assert [sp["space"] for sp in report["spaces"]] == ["rgb", "freq", "sl", "ssl"]
    assert report["classes"] == ["real", "alpha", "beta"]
    for row in report["main_table"]:
        assert 0.0 <= row["accuracy_mean"] <= 1.0
        assert np.asarray(row["confusion"]).sum() == row["n_test"] > 0
        assert (store.paths.reports / row["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in report["main_table"]:
        assert row["fdr_mean"] > 0 and set(row["per_class_accuracy"]) == set(report["classes"])
        assert (store.paths.reports / row["per_class_figure"]).is_file()
        if row["kind"] == "baseline":
            assert row["open_set"] is None and len(row["per_seed"]) == len(settings.seeds)
        else:
            open_set = row["open_set"]  # each model left out in turn, every score measured
            assert [r["held_out"] for r in open_set["rows"]] == MODELS
            assert all(0.0 <= a <= 1.0 for r in open_set["rows"] for a in r["auroc"].values())
            assert open_set["chosen"] == max(open_set["scores"], key=lambda s: open_set["auroc_mean"][s])
    assert report["nmi"] is None  # folder models have no design factors
    assert set(report["tsne"]) == {"pixels", *map(str, settings.methods), "raw"}
    assert all((store.paths.reports / path).read_bytes()[:4] == b"\x89PNG" for path in report["tsne"].values())
    md = (store.paths.reports / "report.md").read_text()
    assert "artifacts (rgb, nearest)" in md and "raw-image control" in md and "figures/confusion_ssl-knn.png" in md
    assert "| Dzanic et al.: spectral decay | knn |" in md and "figures/confusion_baseline-raw-blurjpeg.png" in md
    # the planted checkerboard/stripes make the artifacts attributable far above chance (1/3)
    assert report["main_table"][0]["accuracy_mean"] > 0.6


def test_corrupt_image_names_the_file_and_keeps_the_store(built, tmp_path):
    root, settings, store, _ = built
    before = store.model("alpha").record
    (root / "alpha" / "9999.png").write_bytes(b"not a png at all")
    try:
        steps.materialize_generator(store, settings, "alpha")
        with pytest.raises(InputError, match="9999.png"):
            steps.ingest_generated(store, settings, "alpha")
    finally:
        (root / "alpha" / "9999.png").unlink()
    assert store.model("alpha").record == before
    assert open_array(store.paths.images("alpha")).shape[0] == 60


def test_mixed_sizes_across_sources_are_refused(built, tmp_path, benchmark_factory):
    root = benchmark_factory(tmp_path / "b2", size=12)
    benchmark_factory(tmp_path / "b3", size=16)
    (root / "beta").rename(tmp_path / "old-beta")
    (tmp_path / "b3" / "beta").rename(root / "beta")
    settings = folder_settings(root)
    store = Store(tmp_path / "s", "bench")
    steps.ingest_real(store, settings)
    steps.materialize_generator(store, settings, "beta")
    with pytest.raises(InputError, match="source.resize"):
        steps.ingest_generated(store, settings, "beta")
    assert not store.paths.images("beta").exists()


def test_unknown_model_names_the_fix(built):
    _, settings, store, _ = built
    with pytest.raises(InputError, match="neither a zoo entry"):
        steps.materialize_generator(store, settings, "gamma")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_pipeline_on_cuda_finds_the_same_neighbours(built, tmp_path):
    root, _, cpu_store, _ = built
    settings = folder_settings(root, device="cuda")
    store = Store(tmp_path, "bench")
    outcomes = steps.run_pipeline(store, settings, MODELS)
    engines = {o.summary.search_engine for o in outcomes if o.step == "artifacts"}
    assert engines <= {"torch-cuda", "faiss-gpu"}
    for space in ("rgb", "freq"):  # fixed transforms: the same vectors, so the same exact neighbours
        for source in ["real", *MODELS]:
            np.testing.assert_array_equal(open_array(store.paths.artifacts(space, source), "nn_id")[:],
                                          open_array(cpu_store.paths.artifacts(space, source), "nn_id")[:])
    report = json.loads((store.paths.reports / "report.json").read_text())
    assert report["main_table"][0]["accuracy_mean"] > 0.6


def test_a_missing_weights_file_names_the_config_key_and_keeps_the_store(built):
    root, _, store, _ = built
    before = store.space("sl")
    settings = folder_settings(root, encoders={"sl": {"weights": "/nonexistent/resnet50.pth"}})
    with pytest.raises(InputError, match=r"encoders.sl.weights = '/nonexistent/resnet50.pth' does not exist"):
        steps.materialize_space(store, settings, "sl")
    assert store.space("sl") == before


def test_sl_without_labels_or_weights_names_the_fix(tmp_path, png_writer):
    root = tmp_path / "flat"
    png_writer(root / "real", np.random.default_rng(0).integers(0, 255, (90, 1, 12, 12), dtype=np.uint8))
    png_writer(root / "alpha", np.zeros((10, 1, 12, 12), dtype=np.uint8))
    settings = folder_settings(root, n_reference=60, n_real_class=30)
    store = Store(tmp_path / "store", "bench")
    steps.ingest_real(store, settings)
    with pytest.raises(InputError, match="encoders.sl.weights"):
        steps.materialize_space(store, settings, "sl")
