"""Step 5a, attribution: an attributor per artifact space and kind (and on raw images, the control).

Classes are ``real`` (the real class samples) and every generative model, in
sorted order. Splits come from the manifests (7:2:1 per source), so every
attributor is tested on the same samples.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from manifpt_core.attribution import (
    FitResult,
    FitSettings,
    accuracy,
    confusion_matrix,
    fit_attributor,
    load_attributor,
    predict_logits,
    save_attributor,
)
from manifpt_core.config import RETRAIN_CHOICES, Settings
from manifpt_core.errors import InputError
from manifpt_core.figures import save_confusion_matrix, save_per_class_bars
from manifpt_core.metrics.openset import MAX_SOFTMAX
from manifpt_core.metrics.separability import fd_ratio_reusing, mean_std
from manifpt_core.names import Method
from manifpt_core.spaces import get_space
from manifpt_core.steps.augment import SharedQueries, augmented_training_inputs
from manifpt_core.steps.enroll import (
    Features,
    added_features,
    enroll_attributors,
    enrollment_base,
    features_file,
    network_features,
    now,
    save_features,
    split_features,
    stacked,
)
from manifpt_core.steps.open_set import evaluate_open_set, open_set_holdout, open_set_settings, operating_point
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
from manifpt_core.store.records import AttributorMetrics, MethodsSummary, SeedResult, TrainingInfo
from manifpt_core.torch_helpers import resolve_device, resolve_precision

logger = logging.getLogger(__name__)

ATTRIBUTOR_VERSION = "6"
FEATURES_FILE = "test_features.npz"  # penultimate features and labels of the test set (first seed)
CONFUSION_PNG, PER_CLASS_PNG = "confusion.png", "per_class.png"  # an attributor's figures, in its folder
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
    return stack_classes([by_split(*source_inputs(store.source(name), method, pixels)) for name in classes])


def by_split(x: np.ndarray, split: np.ndarray) -> dict[str, np.ndarray]:
    """One class's rows per split name, in row order (``split``: each row's split, as ``Source.splits`` gives)."""
    return {split_name: x[split == split_name] for split_name in SPLIT_NAMES}


def stack_classes(per_class: list[dict[str, np.ndarray]]) -> Split:
    """(x, label) per split from each class's rows per split, in order; labels are the classes' positions."""
    return {split: (np.concatenate([rows[split] for rows in per_class]),
                    np.concatenate([np.full(len(rows[split]), label, dtype=np.int64)
                                    for label, rows in enumerate(per_class)]))
            for split in SPLIT_NAMES}


def input_hashes(store: Store, method: Method, classes: list[str]) -> dict[str, str]:
    """The content hash of every class's input to a method: its images (control, baselines) or artifacts."""
    if method.is_artifacts:
        return {name: store.source(name).artifacts(method.space).record.content_hash for name in classes}
    return {name: store.source(name).record.content_hash for name in classes}


def train_attributors(store: Store, settings: Settings, method: Method, models: list[str],
                      retrain: str | None = None, shared: SharedQueries | None = None) -> Outcome[AttributorMetrics]:
    """Train one attributor per seed on a method's inputs (a space's artifacts of one kind, or the raw images).

    ``retrain`` (default ``settings.attribution.retrain``): ``enroll`` enrolls the models the stored attributor
    lacks into it when it can (manifpt_core.steps.enroll), ``full`` trains from scratch. ``shared``: given to
    every method of one space, they augment their training inputs from one embedding and search."""
    if method.is_baseline:
        raise InputError(f"{method} is a baseline: run it with steps.run_baseline")
    retrain = retrain or settings.attribution.retrain
    if retrain not in RETRAIN_CHOICES:
        raise InputError(f"retrain = {retrain!r} is not one of {list(RETRAIN_CHOICES)}")
    classes = class_names(models)
    inputs = {**input_hashes(store, method, classes), **augment_input_hashes(store, method, classes,
                                                                              settings.attributor)}
    fit = settings.attributor
    device = resolve_device(settings.device)
    step_settings = {"fit": fit_fingerprint(fit, device), "seeds": list(settings.seeds), "classes": classes,
                     **open_set_settings(settings, classes), **augment_settings(settings, fit)}
    folder = store.method_dir(method)
    base = (enrollment_base(folder, "attributor", ATTRIBUTOR_VERSION, inputs, step_settings, classes)
            if retrain == "enroll" else None)
    network = "resnet" if method.is_control or get_space(method.space).image_shaped else "mlp"

    def compute(tmp: Path, fp: str) -> tuple[str, AttributorMetrics]:
        if base is not None:
            added = [c for c in classes if c not in base.classes]
            data = training_data(store, settings, method, added, fit, device, shared) if added else None
            fresh = added_features(base, data, added, list(settings.seeds), device)
            enrolled = enroll_attributors(base, fresh, classes, list(settings.seeds), tmp, str(method), network,
                                          seed_metrics, (settings.open_set_accept, open_set_holdout(settings, classes)),
                                          FEATURES_FILE)
            write_metrics(tmp, enrolled.metrics)
            return combine_hashes(enrolled.hashes), enrolled.metrics
        data = training_data(store, settings, method, classes, fit, device, shared)
        n_split = tuple(len(data[split][1]) for split in SPLIT_NAMES)
        tmp.mkdir(parents=True)
        fits = fit_seeds(data, classes, fit, settings.seeds, device, tmp, str(method))
        open_set = evaluate_open_set(data, classes, settings, device)
        point, stats_hashes = operating_point(
            tmp, fits.results, [stacked(f, classes) for f in fits.features], list(settings.seeds),
            open_set.chosen if open_set else MAX_SOFTMAX, settings.open_set_accept)
        training = TrainingInfo(mode="full", trained_at=now(), trunk_classes=classes, enrolled=[])
        metrics = seed_metrics(tmp, str(method), network, classes, fits.per_seed,
                               fits.matrices, n_split=n_split, open_set=open_set, features_file=FEATURES_FILE,
                               operating_point=point, training=training)
        write_metrics(tmp, metrics)
        return combine_hashes({**fits.weight_hashes, **stats_hashes}), metrics

    training = base.descriptor(classes) if base is not None else {"mode": "full"}
    return run_cached(folder, "attributor", ATTRIBUTOR_VERSION, inputs, {**step_settings, "training": training},
                      compute, AttributorMetrics)


def fit_fingerprint(fit: FitSettings, device: str) -> dict[str, object]:
    """The attributor settings as a fingerprint reads them, with the precision ``auto`` resolves to here."""
    return {**asdict(fit), "precision": resolve_precision(fit.precision, device)}


def augment_input_hashes(store: Store, method: Method, classes: list[str], fit: FitSettings) -> dict[str, str]:
    """What augmentation reads beyond the method's inputs: every class's images (the control's inputs already
    are) and, for artifacts, the space and index that make the perturbed copies' artifacts. None without it."""
    if fit.augment == "none":
        return {}
    hashes = {f"images/{name}": store.source(name).record.content_hash for name in classes}
    if method.is_artifacts:
        hashes[f"space/{method.space}"] = store.space(method.space).content_hash
        hashes[f"index/{method.space}"] = store.index(method.space).content_hash
    return hashes


def augment_settings(settings: Settings, fit: FitSettings) -> dict[str, object]:
    """The settings augmentation reads (its seed, and how artifacts are searched and made); none without it."""
    if fit.augment == "none":
        return {}
    return {"augment_seed": settings.data_seed, "search": settings.search.settings(),
            "artifacts": settings.artifacts.settings()}


def training_data(store: Store, settings: Settings, method: Method, classes: list[str], fit: FitSettings,
                  device: str, shared: SharedQueries | None = None) -> Split:
    """A method's inputs per split; with ``fit.augment == "perturb"`` half the training inputs come from perturbed
    copies of their images (:mod:`manifpt_core.steps.augment`), validation and test inputs never. ``shared``:
    the images and query work of an earlier method of the same step, read back (same inputs as computing them)."""
    data = gather_inputs(store, method, classes)
    if fit.augment == "perturb":
        x_tr, y_tr = data["train"]
        if shared is None or tuple(classes) not in shared.images:
            images = gather_inputs(store, CONTROL, classes, pixels=True)["train"][0]
            if shared is not None:
                shared.images = {tuple(classes): images}  # one class list at a time
        else:
            images = shared.images[tuple(classes)]
        data["train"] = (augmented_training_inputs(store, settings, method, x_tr, y_tr, images, device, shared)[0],
                         y_tr)
    return data


@dataclass
class SeedFits:
    """What :func:`fit_seeds` measured: per seed its test result, confusion matrix and weights' hash, and the
    trained network with every split's penultimate features (as saved beside it)."""

    per_seed: list[SeedResult]
    matrices: list[np.ndarray]
    weight_hashes: dict[str, str]
    results: list[FitResult]
    features: list[Features]


def fit_seeds(data: Split, classes: list[str], fit: FitSettings, seeds: tuple[int, ...] | list[int], device: str,
              folder: Path, name: str) -> SeedFits:
    """Train one attributor per seed on ``data["train"]`` (best epoch on ``data["val"]``), test it on
    ``data["test"]``, and save ``seed{s}.pt`` (and the first seed's test features) under ``folder``."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data["train"], data["val"], data["test"]
    fits = SeedFits([], [], {}, [], [])
    for seed in seeds:
        result = fit_attributor(x_tr, y_tr, x_va, y_va, len(classes), fit, seed=seed, device=device)
        logits, features = predict_logits(result, x_te, device=device, return_features=True)
        y_pred = logits.argmax(axis=1)
        acc = accuracy(y_te, y_pred)
        fits.matrices.append(confusion_matrix(y_te, y_pred, len(classes)))
        fdr, fd_pairs = fd_ratio_reusing(features, y_te, seed)
        fits.per_seed.append(SeedResult(seed=seed, test_accuracy=acc, fdr=fdr["fdr"],
                                        best_epoch=result.best_epoch, best_val_accuracy=result.best_val_accuracy,
                                        history=result.history))
        if seed == seeds[0]:  # the features the report draws (t-SNE) and clusters (NMI)
            np.savez(folder / FEATURES_FILE, features=features, labels=y_te)
        # Every split's features, per class: what enrolling a new model into this network reuses.
        split_by_class = (network_features(result, {k: data[k] for k in ("train", "val")}, classes, device)
                          | {"test": split_features({"test": features}, {"test": y_te}, classes)["test"]})
        save_features(folder / features_file(seed), split_by_class, fd_pairs)
        save_attributor(result, folder / f"seed{seed}.pt")
        fits.results.append(result)
        fits.features.append(split_by_class)
        fits.weight_hashes[str(seed)] = file_hash(folder / f"seed{seed}.pt")
        logger.info("attributor %s seed %d: test accuracy %.4f", name, seed, acc)
    return fits


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
                 matrices: list[np.ndarray], n_split: tuple[int, int, int], figures: bool = True,
                 **extra) -> AttributorMetrics:
    """Accuracy and FDR over seeds (mean ± sample std; one seed has an unknown std, None, not zero), the
    confusion matrix summed over seeds, per-class accuracy, and (``figures``) their figures written under ``tmp``;
    without figures the record names none (the robustness step's twins: no report or asset shows them)."""
    accuracy_mean, accuracy_std = mean_std([s.test_accuracy for s in per_seed])
    fdr_mean, fdr_std = mean_std([s.fdr for s in per_seed])
    confusion = np.sum(matrices, axis=0)
    per_class = (np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)).tolist()
    if figures:
        save_confusion_matrix(confusion, classes, f"{method}: test confusion (sum over seeds)", tmp / CONFUSION_PNG)
        save_per_class_bars(per_class, classes, f"{method}: test accuracy per class", tmp / PER_CLASS_PNG)
    n_train, n_val, n_test = n_split
    return AttributorMetrics(
        method=method, network=network, classes=classes, n_train=n_train, n_val=n_val, n_test=n_test,
        seeds=[s.seed for s in per_seed], accuracy_mean=accuracy_mean, accuracy_std=accuracy_std,
        fdr_mean=fdr_mean, fdr_std=fdr_std, per_class_accuracy=dict(zip(classes, per_class)), per_seed=per_seed,
        confusion=confusion.tolist(), confusion_png=CONFUSION_PNG if figures else None,
        per_class_png=PER_CLASS_PNG if figures else None, **extra)


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
