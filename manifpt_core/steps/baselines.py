"""Step 5a, baselines: the fingerprints of the paper's Table 2, on the attributors' splits and seeds.

Each baseline reads the same raw images as the raw-image control (real class
samples and every model's), computes its features and trains its classifier on
the train split; the test split is the one every attributor is tested on.
Outputs mirror an attributor's: ``baselines/<name>/metrics.json`` plus figures.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from manifpt_core.attribution import (
    accuracy,
    confusion_matrix,
    fit_attributor,
    predict,
    save_attributor,
)
from manifpt_core.baselines import (
    CLASSICAL,
    BaselineSettings,
    augmentation_of,
    features_of,
    fit_classical,
    standardized,
)
from manifpt_core.config import RETRAIN_CHOICES, Settings
from manifpt_core.errors import InputError
from manifpt_core.metrics.separability import fd_ratio, fd_ratio_reusing
from manifpt_core.names import Method
from manifpt_core.steps.attribute import (
    CONTROL,
    Split,
    by_split,
    fit_fingerprint,
    gather_inputs,
    input_hashes,
    seed_metrics,
    source_inputs,
    stack_classes,
    write_metrics,
)
from manifpt_core.steps.enroll import (
    added_features,
    enroll_attributors,
    enrollment_base,
    features_file,
    network_features,
    now,
    save_features,
)
from manifpt_core.store import SPLIT_NAMES, Outcome, Store, class_names, combine_hashes, run_cached
from manifpt_core.store.hashing import file_hash
from manifpt_core.store.records import AttributorMetrics, SeedResult, TrainingInfo
from manifpt_core.torch_helpers import resolve_device

logger = logging.getLogger(__name__)

BASELINE_VERSION = "2"
FEATURES_DIR = "class_features"  # a classical baseline's features of each class, kept for the next fit


def class_features_file(store: Store, config: BaselineSettings, name: str, model: str) -> str:
    """The file (under FEATURES_DIR) of one class's features for a classical baseline: named by the class and a
    hash of its images, the baseline's parameters and the step's version, so a file found is one to reuse."""
    key = combine_hashes({"images": store.source(model).record.content_hash, "version": BASELINE_VERSION,
                          "parameters": json.dumps(config.params(name), sort_keys=True, default=str)})
    return f"{model}.{key[:16]}.npz"


def classical_inputs(store: Store, config: BaselineSettings, name: str, classes: list[str], out: Path | None = None
                     ) -> Split:
    """A classical baseline's features and labels (positions in ``classes``) per split, as :func:`features_of`
    computes them from every class's stored images. A class whose features the stored baseline kept (same
    images, parameters and version) is read back instead of computed: the features are per image, so adding a
    model computes only its own. With ``out``, every class's features are written under ``out/FEATURES_DIR``."""
    kept = store.method_dir(Method.of_baseline(name)) / FEATURES_DIR
    if out is not None:
        (out / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
    per_class = []
    for model in classes:
        file = class_features_file(store, config, name, model)
        per_split = _kept_features(kept / file, store, model)
        if per_split is None:
            x, split = source_inputs(store.source(model), CONTROL, pixels=True)
            per_split = by_split(features_of(name, x, config), split)
        if out is not None:
            np.savez(out / FEATURES_DIR / file, **per_split)
        per_class.append(per_split)
    return stack_classes(per_class)


def _kept_features(path: Path, store: Store, model: str) -> dict[str, np.ndarray] | None:
    """One class's kept features per split, or None when there are none to reuse (computed again then). A file
    that cannot be read or does not match the class's split sizes is named in a warning and not used."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            per_split = {split: stored[split] for split in SPLIT_NAMES}
    except (OSError, ValueError, KeyError) as err:
        logger.warning("baseline features %s are unreadable (%s); computing them again", path, err)
        return None
    source = store.source(model)
    sizes = np.unique(source.splits(source.query_rows()), return_counts=True)
    expected = dict(zip(sizes[0].tolist(), sizes[1].tolist()))
    if any(len(per_split[split]) != expected.get(split, 0) for split in SPLIT_NAMES):
        logger.warning("baseline features %s do not match %s's split sizes %s; computing them again", path, model,
                       expected)
        return None
    return per_split


def classical_models(name: str, config: BaselineSettings, x_train: np.ndarray, y_train: np.ndarray,
                     seeds: Sequence[int]) -> list:
    """A classical baseline's classifier for each seed, fit on its flattened training features ``x_train``."""
    params = config.params(name)
    options = {key: params[key] for key in ("c", "k") if key in params}
    flat = x_train.reshape(len(x_train), -1)
    return [fit_classical(config.classifier(name), flat, y_train, seed, **options) for seed in seeds]


def run_baseline(store: Store, settings: Settings, name: str, models: list[str],
                 retrain: str | None = None) -> Outcome[AttributorMetrics]:
    """Features, classifier per seed, and test metrics of one baseline (``settings.baselines.methods``).

    A CNN baseline follows ``retrain`` (default ``settings.attribution.retrain``) as the attributors do: with
    ``enroll`` the models its stored networks lack are enrolled as new output classes. A classical classifier
    (SVM, logistic regression, k-NN: seconds) is always fit again on every class."""
    method = Method.of_baseline(name)
    classes = class_names(models)
    inputs = input_hashes(store, method, classes)
    config = settings.baselines
    classifier, params = config.classifier(name), config.params(name)
    device = resolve_device(settings.device)
    retrain = retrain or settings.attribution.retrain
    if retrain not in RETRAIN_CHOICES:
        raise InputError(f"retrain = {retrain!r} is not one of {list(RETRAIN_CHOICES)}")
    step_settings = {"parameters": params, "seeds": list(settings.seeds), "classes": classes}
    if classifier == "cnn":
        step_settings["fit"] = fit_fingerprint(settings.attributor, device)
    folder = store.method_dir(method)
    base = (enrollment_base(folder, "baseline", BASELINE_VERSION, inputs, step_settings, classes)
            if classifier == "cnn" and retrain == "enroll" else None)

    def baseline_inputs(names: list[str]) -> Split:
        data = gather_inputs(store, CONTROL, names, pixels=True)  # the control's images, as stored (uint8)
        return {split: (features_of(name, x, config), y) for split, (x, y) in data.items()}

    def compute(tmp: Path, fp: str) -> tuple[str, AttributorMetrics]:
        if base is not None:
            added = [c for c in classes if c not in base.classes]
            fresh = added_features(base, baseline_inputs(added) if added else None, added, list(settings.seeds), device)
            enrolled = enroll_attributors(base, fresh, classes, list(settings.seeds), tmp, name, classifier,
                                          seed_metrics, None, None, label=config.label(name), parameters=params,
                                          feature_shape=base.metrics.feature_shape)
            write_metrics(tmp, enrolled.metrics)
            return combine_hashes(enrolled.hashes), enrolled.metrics
        tmp.mkdir(parents=True)
        data = classical_inputs(store, config, name, classes, tmp) if classifier in CLASSICAL else baseline_inputs(classes)
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (data[s] for s in SPLIT_NAMES)
        per_seed, matrices, hashes = [], [], {}
        if classifier in CLASSICAL:
            flat_te = x_te.reshape(len(x_te), -1)
            models = dict(zip(settings.seeds, classical_models(name, config, x_tr, y_tr, settings.seeds)))
        for seed in settings.seeds:
            if classifier in CLASSICAL:
                model = models[seed]
                y_pred = model.predict(flat_te)
                features = standardized(model, flat_te)
                fdr = fd_ratio(features, y_te, seed)
                extra = {}
            else:
                result = fit_attributor(x_tr, y_tr, x_va, y_va, len(classes), settings.attributor, seed=seed,
                                        device=device, augment=augmentation_of(name, config))
                y_pred, features = predict(result, x_te, device=device, return_features=True)
                save_attributor(result, tmp / f"seed{seed}.pt")
                fdr, fd_pairs = fd_ratio_reusing(features, y_te, seed)
                save_features(tmp / features_file(seed), network_features(result, data, classes, device), fd_pairs)
                hashes[str(seed)] = file_hash(tmp / f"seed{seed}.pt")
                extra = {"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                         "history": result.history}
            acc = accuracy(y_te, y_pred)
            matrices.append(confusion_matrix(y_te, y_pred, len(classes)))
            per_seed.append(SeedResult(seed=seed, test_accuracy=acc, fdr=fdr["fdr"], **extra))
            logger.info("baseline %s seed %d: test accuracy %.4f", name, seed, acc)
        training = (TrainingInfo(mode="full", trained_at=now(), trunk_classes=classes, enrolled=[])
                    if classifier == "cnn" else None)
        metrics = seed_metrics(tmp, name, classifier, classes, per_seed, matrices,
                               n_split=(len(y_tr), len(y_va), len(y_te)), label=config.label(name),
                               parameters=params, feature_shape=list(x_tr.shape[1:]), training=training)
        write_metrics(tmp, metrics)
        # Only the fields a seed has (a classical classifier has no epochs), so the hash is that of its metrics.
        per_seed_json = json.dumps([{k: v for k, v in s.to_dict().items() if v is not None} for s in per_seed],
                                   sort_keys=True)
        hashes["metrics"] = combine_hashes({"per_seed": per_seed_json})
        return combine_hashes(hashes), metrics

    if classifier == "cnn":
        step_settings["training"] = base.descriptor(classes) if base is not None else {"mode": "full"}
    return run_cached(folder, "baseline", BASELINE_VERSION, inputs, step_settings, compute, AttributorMetrics)
