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
from manifpt_core.config import Settings
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
from manifpt_core.store import Outcome, Store, class_names, combine_hashes, run_cached
from manifpt_core.store.hashing import file_hash
from manifpt_core.store.records import AttributorMetrics, SeedResult
from manifpt_core.torch_helpers import resolve_device

logger = logging.getLogger(__name__)

BASELINE_VERSION = "1"


def classical_models(name: str, config: BaselineSettings, x_train: np.ndarray, y_train: np.ndarray,
                     seeds: Sequence[int]) -> list:
    """A classical baseline's classifier for each seed, fit on its flattened training features ``x_train``."""
    params = config.params(name)
    options = {key: params[key] for key in ("c", "k") if key in params}
    flat = x_train.reshape(len(x_train), -1)
    return [fit_classical(config.classifier(name), flat, y_train, seed, **options) for seed in seeds]


def run_baseline(store: Store, settings: Settings, name: str, models: list[str]) -> Outcome[AttributorMetrics]:
    """Features, classifier per seed, and test metrics of one baseline (``settings.baselines.methods``)."""
    method = Method.of_baseline(name)
    classes = class_names(models)
    inputs = input_hashes(store, method, classes)
    config = settings.baselines
    classifier, params = config.classifier(name), config.params(name)

    def compute(tmp: Path, fp: str) -> tuple[str, AttributorMetrics]:
        data = gather_inputs(store, CONTROL, classes, pixels=True)  # the control's images, as stored (uint8)
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = ((features_of(name, x, config), y) for x, y in
                                                    (data[s] for s in ("train", "val", "test")))
        tmp.mkdir(parents=True)
        per_seed, matrices, hashes = [], [], {}
        device = resolve_device(settings.device)
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
                hashes[str(seed)] = file_hash(tmp / f"seed{seed}.pt")
                extra = {"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                         "history": result.history}
            acc = accuracy(y_te, y_pred)
            matrices.append(confusion_matrix(y_te, y_pred, len(classes)))
            per_seed.append(SeedResult(seed=seed, test_accuracy=acc, fdr=fd_ratio(features, y_te, seed)["fdr"], **extra))
            logger.info("baseline %s seed %d: test accuracy %.4f", name, seed, acc)
        metrics = seed_metrics(tmp, name, classifier, classes, per_seed, matrices,
                               n_split=(len(y_tr), len(y_va), len(y_te)), label=config.label(name),
                               parameters=params, feature_shape=list(x_tr.shape[1:]))
        write_metrics(tmp, metrics)
        # Only the fields a seed has (a classical classifier has no epochs), so the hash is that of its metrics.
        per_seed_json = json.dumps([{k: v for k, v in s.to_dict().items() if v is not None} for s in per_seed],
                                   sort_keys=True)
        hashes["metrics"] = combine_hashes({"per_seed": per_seed_json})
        return combine_hashes(hashes), metrics

    step_settings = {"parameters": params, "seeds": list(settings.seeds), "classes": classes}
    if classifier == "cnn":
        step_settings["fit"] = fit_fingerprint(settings.attributor, resolve_device(settings.device))
    return run_cached(store.method_dir(method), "baseline", BASELINE_VERSION, inputs, step_settings, compute,
                      AttributorMetrics)
