"""Cross-dataset generalization (ManiFPT's Table 4): attributors trained on the generative models of dataset A
label the test split of the same architectures trained on dataset B.

``<root>/cross_dataset/``: ``report.json`` and ``report.md``, for every ordered pair of datasets and every
method (artifacts of a space and kind, and the raw-image control). Classes match by name: ``real`` and the
models both datasets have. B's samples of a model A never saw are dropped; a prediction of a model that B
lacks is simply wrong.
"""

from __future__ import annotations

import json
import logging
from itertools import combinations, permutations
from pathlib import Path
from typing import Any

import numpy as np

from manifpt_core.attribution import accuracy, load_attributor, predict
from manifpt_core.config import Settings
from manifpt_core.errors import InputError, StoreError
from manifpt_core.formatting import format_mean_std
from manifpt_core.metrics.separability import mean_std
from manifpt_core.names import Method
from manifpt_core.steps.attribute import CONTROL, gather_inputs, input_hashes
from manifpt_core.store import (
    Outcome,
    Store,
    class_names,
    combine_hashes,
    cross_dataset_dir,
    run_cached,
)
from manifpt_core.store.records import CrossSummary
from manifpt_core.torch_helpers import resolve_device

logger = logging.getLogger(__name__)

CROSS_VERSION = "1"


def shared_classes(train_models: list[str], test_models: list[str]) -> list[str]:
    """``real`` and the models of both datasets, by name: the classes a cross-dataset test can score."""
    return class_names(sorted(set(train_models) & set(test_models)))


def pair_methods(train: Settings, test: Settings) -> list[Method]:
    """The methods both datasets have attributors and artifacts for, in the training dataset's order, then ``raw``."""
    return [m for m in train.methods if m in test.methods] + [CONTROL]


def _check(stores: list[Store], settings: list[Settings], models_by_dataset: dict[str, list[str]]) -> list[str]:
    names = [store.dataset for store in stores]
    if len(names) < 2:
        raise InputError(f"cross-dataset generalization needs at least 2 datasets, got {names}; "
                         "add a second entry to `datasets` in the settings")
    if len(set(names)) != len(names):
        raise InputError(f"a dataset is listed twice: {names}")
    if [s.dataset for s in settings] != names:
        raise InputError(f"settings {[s.dataset for s in settings]} do not match the stores {names} one to one")
    if len({store.root for store in stores}) > 1:
        raise InputError(f"the stores have different roots {sorted({str(s.root) for s in stores})}; "
                         "cross-dataset generalization writes beside the datasets under one root")
    missing = [name for name in names if name not in models_by_dataset]
    if missing:
        raise InputError(f"no model list for dataset(s) {missing}; models_by_dataset has {sorted(models_by_dataset)}")
    for a, b in combinations(names, 2):
        if not set(models_by_dataset[a]) & set(models_by_dataset[b]):
            raise InputError(
                f"datasets {a!r} ({sorted(models_by_dataset[a])}) and {b!r} ({sorted(models_by_dataset[b])}) share "
                "no generative model; models are matched by name, so name the same architecture alike in both")
    shapes = {name: store.real.summary.image_shape for name, store in zip(names, stores)}
    if len({tuple(shape) for shape in shapes.values()}) > 1:
        raise InputError(f"the datasets' images differ in shape {shapes}: an attributor takes one shape; "
                         "set `source.resize` to the same size for every dataset")
    return names


def _score(train: Store, test: Store, method: Method, models: dict[str, list[str]], device: str) -> dict[str, Any]:
    """Accuracy of ``train``'s seed attributors on ``test``'s test split, over the classes both datasets have."""
    metrics = train.attributor(method)
    trained_on = metrics.classes
    if trained_on != class_names(models[train.dataset]):
        raise StoreError(f"the {str(method)!r} attributor of {train.dataset!r} knows classes {trained_on}, not "
                         f"{class_names(models[train.dataset])}: materialize {train.dataset!r}'s attributors again")
    shared = shared_classes(models[train.dataset], models[test.dataset])
    x, y_shared = gather_inputs(test, method, shared)["test"]
    # Labels are positions in the class list; the two datasets' lists differ when their models do.
    position = {name: i for i, name in enumerate(trained_on)}
    y = np.array([position[name] for name in shared], dtype=np.int64)[y_shared]
    per_seed = []
    for seed in metrics.seeds:
        attributor = load_attributor(train.paths.weights(method, seed))
        per_seed.append({"seed": seed, "accuracy": accuracy(y, predict(attributor, x, device=device))})
    mean, std = mean_std([s["accuracy"] for s in per_seed])
    dropped = sorted(set(models[test.dataset]) - set(models[train.dataset]))
    logger.info("%s: %s -> %s accuracy %.4f (in-dataset %.4f)", method, train.dataset, test.dataset, mean,
                metrics.accuracy_mean)
    return {"train": train.dataset, "test": test.dataset, "method": str(method), "classes": shared,
            "accuracy_mean": mean, "accuracy_std": std, "per_seed": per_seed, "n_test": len(y),
            "dropped_models": dropped, "n_dropped": sum(test.model(m).count("test") for m in dropped),
            "in_dataset_mean": metrics.accuracy_mean, "in_dataset_std": metrics.accuracy_std,
            "in_dataset_n_test": metrics.n_test}


def cross_dataset(stores: list[Store], settings: list[Settings], models_by_dataset: dict[str, list[str]]
                  ) -> Outcome[CrossSummary]:
    """Test every dataset's attributors on every other dataset's test split: ``<root>/cross_dataset/report.*``.

    ``stores`` and ``settings`` name the same datasets in the same order, under one root;
    ``models_by_dataset`` gives each dataset's generative models. Reuses the stored report when no
    attributor and no test input changed.
    """
    names = _check(stores, settings, models_by_dataset)
    store, setting = dict(zip(names, stores)), dict(zip(names, settings))
    models = {name: sorted(models_by_dataset[name]) for name in names}
    plan = [(a, b, method) for a, b in permutations(names, 2) for method in pair_methods(setting[a], setting[b])]
    inputs = {}
    for a, b, method in plan:
        inputs[f"{a}/attributor/{method}"] = store[a].attributor_record(method).content_hash
        prefix = f"{b}/images" if method.is_control else f"{b}/artifacts/{method.space}"
        for source, content_hash in input_hashes(store[b], method, shared_classes(models[a], models[b])).items():
            inputs[f"{prefix}/{source}"] = content_hash

    def compute(tmp: Path, fp: str) -> tuple[str, CrossSummary]:
        rows = [_score(store[a], store[b], method, models, resolve_device(setting[a].device)) for a, b, method in plan]
        report = {"datasets": names, "models": models, "rows": rows, "inputs": inputs, "fingerprint": fp}
        tmp.mkdir(parents=True)
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        (tmp / "report.md").write_text(render_markdown(report))
        summary = CrossSummary(datasets=names, rows=[
            {k: r[k] for k in ("train", "test", "method", "accuracy_mean", "accuracy_std", "n_test", "in_dataset_mean")}
            for r in rows])
        return combine_hashes({"report": json.dumps(report, sort_keys=True)}), summary

    return run_cached(cross_dataset_dir(stores[0].root), "cross_dataset", CROSS_VERSION, inputs,
                      {"datasets": names, "models": models, "methods": sorted({str(m) for _, _, m in plan})}, compute,
                      CrossSummary)


def generalization_table(rows: list[dict[str, Any]]) -> str:
    """Markdown laid out as the paper's Table 4: a row per method, a column per "train → test" pair."""
    pairs = list(dict.fromkeys((r["train"], r["test"]) for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["train"], r["test"]): format_mean_std(r["accuracy_mean"], r["accuracy_std"], 100) for r in rows}
    lines = ["| method | " + " | ".join(f"{a} → {b}" for a, b in pairs) + " |", "|---" * (len(pairs) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(cell.get((m, a, b), "n/a") for a, b in pairs) + " |" for m in methods]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable cross-dataset report."""
    rows = report["rows"]
    lines = [
        f"# Cross-dataset generalization: {', '.join(report['datasets'])}",
        "",
        ("Attributors trained on one dataset's generative models (train) name the generative model behind the test "
         "split of the same architectures trained on another dataset (test). Test accuracy (%), mean ± std over the "
         "training dataset's seeds. Classes match by name: `real` and the models both datasets have; `raw` is the "
         "control on raw images."),
        "",
        generalization_table(rows),
        "",
        "## Beside the in-dataset accuracy",
        "",
        "In-dataset: the training dataset's own test split, over all its classes.",
        "",
        "| method | train → test | cross-dataset | in-dataset | drop (points) | test samples | dropped (models train never saw) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dropped = f"{r['n_dropped']} ({', '.join(r['dropped_models'])})" if r["dropped_models"] else "0"
        lines.append(f"| {r['method']} | {r['train']} → {r['test']} | {format_mean_std(r['accuracy_mean'], r['accuracy_std'], 100)} | "
                     f"{format_mean_std(r['in_dataset_mean'], r['in_dataset_std'], 100)} | "
                     f"{100 * (r['in_dataset_mean'] - r['accuracy_mean']):.2f} | {r['n_test']} | {dropped} |")
    lines += ["", "## Classes", ""]
    pairs = dict.fromkeys((r["train"], r["test"], ", ".join(r["classes"])) for r in rows)
    lines += [f"- {a} → {b}: {classes}" for a, b, classes in pairs]
    return "\n".join(lines) + "\n"
