"""Step 5a, attribution: an attributor per artifact space and kind (and on raw images, the control).

Classes are ``real`` (the real class samples) and every generative model, in
sorted order. Splits come from the manifests (7:2:1 per source), so every
attributor is tested on the same samples.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from manifpt_core.attribution import (
    accuracy,
    confusion_matrix,
    fit_attributor,
    predict,
    predict_proba,
    resolve_device,
    save_attributor,
)
from manifpt_core.config import Settings, parse_method
from manifpt_core.errors import InputError, StoreError
from manifpt_core.figures import save_confusion_matrix, save_per_class_bars
from manifpt_core.metrics.separability import fd_ratio, mean_std, open_set_auroc
from manifpt_core.spaces import get_space
from manifpt_core.steps.cache import Outcome, require_record, run_cached
from manifpt_core.store import Store, combine_hashes, open_array, read_manifest
from manifpt_core.store.hashing import file_hash

logger = logging.getLogger(__name__)

ATTRIBUTOR_VERSION = "3"
FEATURES_FILE = "test_features.npz"  # penultimate features and labels of the test set (first seed)
ARTIFACT_ARRAYS = {"nearest": "artifact", "knn": "knn_artifact"}  # the stored array of each artifact kind
RAW = "raw"  # the control: the same network on the raw images instead of artifacts
SPLIT_NAMES = ("train", "val", "test")


def classes_for(models: list[str]) -> list[str]:
    """Class names in label order: the real class first, then models sorted by name."""
    if not models:
        raise InputError("attribution needs at least one generative model; add a zoo entry or a model folder")
    return ["real", *sorted(models)]


def _splits(store: Store, source: str, rows: np.ndarray) -> np.ndarray:
    table = read_manifest(store.source_manifest(source), ["row", "split"])
    split_of_row = np.asarray(table.column("split").to_pylist(), dtype=object)
    return split_of_row[rows]


def _source_inputs(store: Store, method: str, source: str, pixels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(x, split per row) of one class's samples: its artifacts of one kind, or its raw images.

    Image-shaped artifacts (and raw images) are (n, C, H, W); a learned space's are vectors (n, D).
    Raw images are float32 in [0, 1], or with ``pixels`` the stored uint8 values.
    """
    images = require_record(store.images(source), f"the images of {source!r}")["summary"]
    if method == RAW:
        n_ref = images.get("n_reference", 0)  # the real reference rows are the manifold, not a class
        rows = np.arange(n_ref, images["n_samples"])
        x = open_array(store.images(source))[n_ref:]
        if not pixels:
            x = x.astype(np.float32) / np.float32(255.0)
        return x, _splits(store, source, rows)
    space, kind = parse_method(method)
    path = store.artifacts(space, source)
    rows = open_array(path, "query_row")[:]
    x = open_array(path, ARTIFACT_ARRAYS[kind])[:]
    if get_space(space).image_shaped:
        x = x.reshape((len(rows), *images["image_shape"]))
    return x, _splits(store, source, rows)


def gather_inputs(store: Store, method: str, classes: list[str],
                  pixels: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(x, label) per split, labels being positions in ``classes`` (``pixels``: see :func:`_source_inputs`)."""
    data = {split: ([], []) for split in SPLIT_NAMES}
    for label, source in enumerate(classes):
        x, split = _source_inputs(store, method, source, pixels)
        for name in SPLIT_NAMES:
            mask = split == name
            data[name][0].append(x[mask])
            data[name][1].append(np.full(int(mask.sum()), label, dtype=np.int64))
    return {k: (np.concatenate(xs), np.concatenate(ys)) for k, (xs, ys) in data.items()}


def train_attributors(store: Store, settings: Settings, method: str, models: list[str]) -> Outcome:
    """Train one attributor per seed on a method's inputs (a space's artifacts of one kind, or the raw images).

    ``method`` is ``RAW`` or a name made by ``config.method_name`` (``rgb``, ``rgb-knn``, ...).
    """
    classes = classes_for(models)
    inputs = {}
    for source in classes:
        path = store.images(source) if method == RAW else store.artifacts(parse_method(method)[0], source)
        inputs[source] = require_record(path, f"{'images' if method == RAW else 'artifacts'} of {source!r}")["content_hash"]
    fit = settings.attributor

    def compute(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
        data = gather_inputs(store, method, classes)
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data["train"], data["val"], data["test"]
        device = resolve_device(settings.device)
        tmp.mkdir(parents=True)
        per_seed, matrices, weight_hashes = [], [], {}
        for seed in settings.seeds:
            result = fit_attributor(x_tr, y_tr, x_va, y_va, len(classes), fit, seed=seed, device=device)
            y_pred, features = predict(result, x_te, device=device, return_features=True)
            acc = accuracy(y_te, y_pred)
            matrices.append(confusion_matrix(y_te, y_pred, len(classes)))
            per_seed.append({"seed": seed, "test_accuracy": acc, "fdr": fd_ratio(features, y_te, seed)["fdr"],
                             "best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                             "history": result.history})
            if seed == settings.seeds[0]:  # the features the report draws (t-SNE) and clusters (NMI)
                np.savez(tmp / FEATURES_FILE, features=features, labels=y_te)
            save_attributor(result, tmp / f"seed{seed}.pt")
            weight_hashes[str(seed)] = file_hash(tmp / f"seed{seed}.pt")
            logger.info("attributor %s seed %d: test accuracy %.4f", method, seed, acc)
        summary = {
            "method": method,
            "network": "resnet" if x_tr.ndim == 4 else "mlp",
            "classes": classes,
            "n_train": len(y_tr), "n_val": len(y_va), "n_test": len(y_te),
            **seed_summary(tmp, method, classes, per_seed, matrices),
            "open_set": _open_set(data, classes, settings, device, tmp),
            "features_file": FEATURES_FILE,
        }
        (tmp / "metrics.json").write_text(json.dumps(summary, indent=2))
        return combine_hashes(weight_hashes), summary

    return run_cached(store.attributor(method), "attributor", ATTRIBUTOR_VERSION, inputs,
                      {"fit": asdict(fit), "seeds": list(settings.seeds), "classes": classes,
                       "open_set_holdout": open_set_holdout(settings, classes)}, compute)


def seed_summary(tmp: Path, method: str, classes: list[str], per_seed: list[dict[str, Any]],
                 matrices: list[np.ndarray]) -> dict[str, Any]:
    """Accuracy and FDR over seeds (mean ± sample std; one seed has an unknown std, None, not zero), the
    confusion matrix summed over seeds, per-class accuracy, and their figures written under ``tmp``."""
    accuracy_mean, accuracy_std = mean_std([s["test_accuracy"] for s in per_seed])
    fdr_mean, fdr_std = mean_std([s["fdr"] for s in per_seed])
    confusion = np.sum(matrices, axis=0)
    per_class = (np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)).tolist()
    save_confusion_matrix(confusion, classes, f"{method}: test confusion (sum over seeds)", tmp / "confusion.png")
    save_per_class_bars(per_class, classes, f"{method}: test accuracy per class", tmp / "per_class.png")
    return {"seeds": [s["seed"] for s in per_seed],
            "accuracy_mean": accuracy_mean, "accuracy_std": accuracy_std,
            "fdr_mean": fdr_mean, "fdr_std": fdr_std,
            "per_class_accuracy": dict(zip(classes, per_class)),
            "per_seed": per_seed,
            "confusion": confusion.tolist(),
            "confusion_png": "confusion.png",
            "per_class_png": "per_class.png"}


def open_set_holdout(settings: Settings, classes: list[str]) -> str | None:
    """The generative model held out of the open-set attributor: ``attributor_open_set`` (``auto``: the
    last model by name; ``none``: no open-set check). Two models at least must stay known."""
    choice = settings.open_set_holdout
    if choice == "none" or len(classes) < 3:
        return None
    if choice == "auto":
        return classes[-1]
    if choice not in classes[1:]:
        raise InputError(f"open_set_holdout = {choice!r} is not one of the models {classes[1:]}; "
                         "name one of them, 'auto' or 'none'")
    return choice


def _open_set(data: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str], settings: Settings,
              device: str, tmp: Path) -> dict[str, Any] | None:
    """Train (first seed) without one model; how well 1 - max softmax tells its test samples from known ones."""
    held = open_set_holdout(settings, classes)
    if held is None:
        return None
    label = classes.index(held)
    known = [c for c in classes if c != held]
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[[classes.index(c) for c in known]] = np.arange(len(known))

    def keep(split: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = data[split]
        mask = y != label
        return x[mask], remap[y[mask]]

    (x_tr, y_tr), (x_va, y_va) = keep("train"), keep("val")
    result = fit_attributor(x_tr, y_tr, x_va, y_va, len(known), settings.attributor, seed=settings.seeds[0],
                            device=device)
    x_te, y_te = data["test"]
    score = 1.0 - predict_proba(result, x_te, device=device).max(axis=1)
    auroc = open_set_auroc(score[y_te != label], score[y_te == label])
    logger.info("open set without %s: AUROC %.4f", held, auroc)
    return {"held_out": held, "score": "1 - max softmax", "auroc": auroc, "seed": settings.seeds[0],
            "n_known": int((y_te != label).sum()), "n_unknown": int((y_te == label).sum())}


def attributor_metrics(store: Store, method: str) -> dict[str, Any]:
    """The stored metrics of a method's attributor (StoreError if it was never trained)."""
    path = store.attributor(method) / "metrics.json"
    if not path.is_file():
        raise StoreError(f"no attributor metrics at {path}: materialize the attributor for {method!r} first")
    return json.loads(path.read_text())
