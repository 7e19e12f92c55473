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
from manifpt_core.metrics.separability import fd_ratio
from manifpt_core.names import Method
from manifpt_core.steps.attribute import (
    CONTROL,
    fit_fingerprint,
    gather_inputs,
    input_hashes,
    seed_metrics,
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

    def baseline_inputs(names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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
        data = baseline_inputs(classes)
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (data[s] for s in SPLIT_NAMES)
        tmp.mkdir(parents=True)
        per_seed, matrices, hashes = [], [], {}
        if classifier in CLASSICAL:
            flat_te = x_te.reshape(len(x_te), -1)
            models = dict(zip(settings.seeds, classical_models(name, config, x_tr, y_tr, settings.seeds)))
        for seed in settings.seeds:
            if classifier in CLASSICAL:
                model = models[seed]
                y_pred = model.predict(flat_te)
                features = standardized(model, flat_te)
                extra = {}
            else:
                result = fit_attributor(x_tr, y_tr, x_va, y_va, len(classes), settings.attributor, seed=seed,
                                        device=device, augment=augmentation_of(name, config))
                y_pred, features = predict(result, x_te, device=device, return_features=True)
                save_attributor(result, tmp / f"seed{seed}.pt")
                save_features(tmp / features_file(seed), network_features(result, data, classes, device))
                hashes[str(seed)] = file_hash(tmp / f"seed{seed}.pt")
                extra = {"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                         "history": result.history}
            acc = accuracy(y_te, y_pred)
            matrices.append(confusion_matrix(y_te, y_pred, len(classes)))
            per_seed.append(SeedResult(seed=seed, test_accuracy=acc, fdr=fd_ratio(features, y_te, seed)["fdr"], **extra))
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
