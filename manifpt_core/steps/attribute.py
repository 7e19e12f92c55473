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

import numpy as np

from manifpt_core.attribution import (
    FitResult,
    accuracy,
    confusion_matrix,
    fit_attributor,
    load_attributor,
    predict_logits,
    predict_proba,
    save_attributor,
    softmax,
)
from manifpt_core.config import Settings
from manifpt_core.errors import InputError
from manifpt_core.figures import save_confusion_matrix, save_per_class_bars
from manifpt_core.metrics.separability import acceptance_threshold, fd_ratio, mean_std, open_set_auroc
from manifpt_core.names import Method
from manifpt_core.spaces import get_space
from manifpt_core.store import (
    SPLIT_NAMES,
    Outcome,
    Source,
    Store,
    class_names,
    combine_hashes,
    run_cached,
)
from manifpt_core.store.hashing import file_hash
from manifpt_core.store.layout import METRICS_FILE
from manifpt_core.store.records import (
    AttributorMetrics,
    MethodsSummary,
    OpenSetResult,
    OperatingPoint,
    SeedResult,
)
from manifpt_core.torch_helpers import resolve_device

logger = logging.getLogger(__name__)

ATTRIBUTOR_VERSION = "4"
OPEN_SET_SCORE = "max softmax (mean over seeds)"  # the open-set score queries use
FEATURES_FILE = "test_features.npz"  # penultimate features and labels of the test set (first seed)
CONTROL = Method.control()  # the same network on the raw images instead of artifacts

Split = dict[str, tuple[np.ndarray, np.ndarray]]


def source_inputs(source: Source, method: Method, pixels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(x, split per row) of one class's samples: its artifacts of one kind, or (the control) its raw images.

    Image-shaped artifacts (and raw images) are (n, C, H, W); a learned space's are vectors (n, D).
    Raw images are float32 in [0, 1], or with ``pixels`` the stored uint8 values.
    """
    if method.is_control:
        x = source.query_images()
        if not pixels:
            x = x.astype(np.float32) / np.float32(255.0)
        return x, source.splits(source.query_rows())
    artifacts = source.artifacts(method.space)
    rows = artifacts.query_row[:]
    x = artifacts.of_kind(method.kind)[:]
    if get_space(method.space).image_shaped:
        x = x.reshape((len(rows), *source.summary.shape))
    return x, source.splits(rows)


def gather_inputs(store: Store, method: Method, classes: list[str], pixels: bool = False) -> Split:
    """(x, label) per split, labels being positions in ``classes`` (``pixels``: see :func:`source_inputs`)."""
    data = {split: ([], []) for split in SPLIT_NAMES}
    for label, name in enumerate(classes):
        x, split = source_inputs(store.source(name), method, pixels)
        for split_name in SPLIT_NAMES:
            mask = split == split_name
            data[split_name][0].append(x[mask])
            data[split_name][1].append(np.full(int(mask.sum()), label, dtype=np.int64))
    return {k: (np.concatenate(xs), np.concatenate(ys)) for k, (xs, ys) in data.items()}


def input_hashes(store: Store, method: Method, classes: list[str]) -> dict[str, str]:
    """The content hash of every class's input to a method: its images (control, baselines) or artifacts."""
    if method.is_artifacts:
        return {name: store.source(name).artifacts(method.space).record.content_hash for name in classes}
    return {name: store.source(name).record.content_hash for name in classes}


def train_attributors(store: Store, settings: Settings, method: Method, models: list[str]
                      ) -> Outcome[AttributorMetrics]:
    """Train one attributor per seed on a method's inputs (a space's artifacts of one kind, or the raw images)."""
    if method.is_baseline:
        raise InputError(f"{method} is a baseline: run it with steps.run_baseline")
    classes = class_names(models)
    inputs = input_hashes(store, method, classes)
    fit = settings.attributor

    def compute(tmp: Path, fp: str) -> tuple[str, AttributorMetrics]:
        data = gather_inputs(store, method, classes)
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data["train"], data["val"], data["test"]
        device = resolve_device(settings.device)
        tmp.mkdir(parents=True)
        per_seed, matrices, weight_hashes, val_probs, test_probs = [], [], {}, [], []
        for seed in settings.seeds:
            result = fit_attributor(x_tr, y_tr, x_va, y_va, len(classes), fit, seed=seed, device=device)
            logits, features = predict_logits(result, x_te, device=device, return_features=True)
            y_pred = logits.argmax(axis=1)
            test_probs.append(softmax(logits))
            val_probs.append(predict_proba(result, x_va, device=device))
            acc = accuracy(y_te, y_pred)
            matrices.append(confusion_matrix(y_te, y_pred, len(classes)))
            per_seed.append(SeedResult(seed=seed, test_accuracy=acc, fdr=fd_ratio(features, y_te, seed)["fdr"],
                                       best_epoch=result.best_epoch, best_val_accuracy=result.best_val_accuracy,
                                       history=result.history))
            if seed == settings.seeds[0]:  # the features the report draws (t-SNE) and clusters (NMI)
                np.savez(tmp / FEATURES_FILE, features=features, labels=y_te)
            save_attributor(result, tmp / f"seed{seed}.pt")
            weight_hashes[str(seed)] = file_hash(tmp / f"seed{seed}.pt")
            logger.info("attributor %s seed %d: test accuracy %.4f", method, seed, acc)
        metrics = seed_metrics(tmp, str(method), "resnet" if x_tr.ndim == 4 else "mlp", classes, per_seed, matrices,
                               n_split=(len(y_tr), len(y_va), len(y_te)),
                               open_set=_open_set(data, classes, settings, device), features_file=FEATURES_FILE,
                               operating_point=operating_point(val_probs, test_probs, settings.open_set_accept))
        write_metrics(tmp, metrics)
        return combine_hashes(weight_hashes), metrics

    return run_cached(store.method_dir(method), "attributor", ATTRIBUTOR_VERSION, inputs,
                      {"fit": asdict(fit), "seeds": list(settings.seeds), "classes": classes,
                       "open_set_holdout": open_set_holdout(settings, classes),
                       "open_set_accept": settings.open_set_accept}, compute, AttributorMetrics)


def operating_point(val_probs: list[np.ndarray], test_probs: list[np.ndarray], accept: float) -> OperatingPoint:
    """The open-set threshold on the seeds' mean softmax: ``accept`` of the validation images (every one of a
    known class) reach it; ``test_accepted`` is the share of the test images that do (the measured rate)."""
    val_score = np.mean(val_probs, axis=0).max(axis=1)
    threshold = acceptance_threshold(val_score, accept)
    test_score = np.mean(test_probs, axis=0).max(axis=1)
    return OperatingPoint(score=OPEN_SET_SCORE, accept=accept, threshold=threshold, n_val=len(val_score),
                          test_accepted=float((test_score >= threshold).mean()))


def seed_networks(store: Store, method: Method) -> tuple[AttributorMetrics, list[tuple[int, FitResult]]]:
    """A stored method's metrics and its trained network of every seed, in seed order (an attributor or the
    control; a classical baseline keeps no network)."""
    if method.is_baseline:
        raise InputError(f"{method} is a baseline: queries and the feature table use the attributors and the "
                         f"control ({CONTROL})")
    store.attributor_record(method)  # a clear error naming what to materialize
    metrics = store.attributor(method)
    return metrics, [(seed, load_attributor(store.paths.weights(method, seed))) for seed in metrics.seeds]


def write_metrics(folder: Path, metrics: AttributorMetrics) -> None:
    """``metrics.json``: what the report, the cross-dataset step and users read back as AttributorMetrics."""
    (folder / METRICS_FILE).write_text(json.dumps(metrics.to_dict(), indent=2))


def seed_metrics(tmp: Path, method: str, network: str, classes: list[str], per_seed: list[SeedResult],
                 matrices: list[np.ndarray], n_split: tuple[int, int, int], **extra) -> AttributorMetrics:
    """Accuracy and FDR over seeds (mean ± sample std; one seed has an unknown std, None, not zero), the
    confusion matrix summed over seeds, per-class accuracy, and their figures written under ``tmp``."""
    accuracy_mean, accuracy_std = mean_std([s.test_accuracy for s in per_seed])
    fdr_mean, fdr_std = mean_std([s.fdr for s in per_seed])
    confusion = np.sum(matrices, axis=0)
    per_class = (np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)).tolist()
    save_confusion_matrix(confusion, classes, f"{method}: test confusion (sum over seeds)", tmp / "confusion.png")
    save_per_class_bars(per_class, classes, f"{method}: test accuracy per class", tmp / "per_class.png")
    n_train, n_val, n_test = n_split
    return AttributorMetrics(
        method=method, network=network, classes=classes, n_train=n_train, n_val=n_val, n_test=n_test,
        seeds=[s.seed for s in per_seed], accuracy_mean=accuracy_mean, accuracy_std=accuracy_std,
        fdr_mean=fdr_mean, fdr_std=fdr_std, per_class_accuracy=dict(zip(classes, per_class)), per_seed=per_seed,
        confusion=confusion.tolist(), confusion_png="confusion.png", per_class_png="per_class.png", **extra)


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


def _open_set(data: Split, classes: list[str], settings: Settings, device: str) -> OpenSetResult | None:
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
    return OpenSetResult(held_out=held, score="1 - max softmax", auroc=auroc, seed=settings.seeds[0],
                         n_known=int((y_te != label).sum()), n_unknown=int((y_te == label).sum()))


def combine_outcomes(outcomes: list[Outcome[AttributorMetrics]]) -> Outcome[MethodsSummary]:
    """One outcome for several attributors materialized together (a space's artifact kinds): its fingerprint and
    content hash cover all of them, and its summary gives each method's headline numbers."""
    keys = ("accuracy_mean", "accuracy_std", "fdr_mean", "n_test", "network", "open_set")
    return Outcome(
        step=outcomes[0].step, path=outcomes[0].path.parent,
        fingerprint=combine_hashes({o.summary.method: o.fingerprint for o in outcomes}),
        content_hash=combine_hashes({o.summary.method: o.content_hash for o in outcomes}),
        reused=all(o.reused for o in outcomes), seconds=sum(o.seconds for o in outcomes),
        summary=MethodsSummary({o.summary.method: {k: v for k, v in o.summary.to_dict().items() if k in keys}
                                for o in outcomes}))


def seed_table_markdown(metrics: list[AttributorMetrics]) -> str:
    """Every seed's test accuracy, FDR and best epoch, one row a method and seed (Dagster metadata)."""
    rows = [f"| {m.method} | {s.seed} | {100 * s.test_accuracy:.2f}% | {s.fdr:.2f} | "
            f"{'-' if s.best_epoch is None else s.best_epoch} |" for m in metrics for s in m.per_seed]
    return "\n".join(["| method | seed | test accuracy | FDR | best epoch |", "|---|---|---|---|---|", *rows])
