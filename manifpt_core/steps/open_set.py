"""Open-set evaluation of an attributor: how well it tells images of a model it never saw from known ones.

Each generative model in turn (``open_set_holdout = "each"``) is left out of training (the first
``open_set_seeds`` seeds); every open-set score of manifpt_core.metrics.openset is measured on the left-out
attributor: the AUROC of telling the left-out model's test samples from the known test samples, and the share
of them rejected at the operating point (the threshold that accepts ``open_set_accept`` of the known validation
images). The score with the higher mean AUROC over the left-out models is the one queries use: the full
attributor's operating point is calibrated for it on the full attributor's validation images, and every seed's
class statistics (what the distance score needs) are stored beside its network.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from manifpt_core.attribution import FitResult, fit_attributor, predict_logits, softmax
from manifpt_core.attribution.enroll import head_logits, head_of
from manifpt_core.config import Settings
from manifpt_core.errors import InputError, StoreError
from manifpt_core.metrics.openset import (
    MAHALANOBIS,
    MAX_SOFTMAX,
    SCORES,
    ClassStatistics,
    fit_class_statistics,
    mahalanobis,
    max_softmax,
    rejected_share,
    unknown_auroc,
)
from manifpt_core.metrics.separability import acceptance_threshold, mean_std
from manifpt_core.names import Method
from manifpt_core.store import Store
from manifpt_core.store.hashing import file_hash
from manifpt_core.store.records import AttributorMetrics, OpenSetResult, OpenSetRow, OperatingPoint

logger = logging.getLogger(__name__)

HOLDOUT_CHOICES = ("each", "auto", "none")  # besides a model's name
Split = dict[str, tuple[np.ndarray, np.ndarray]]  # (x, label) per split, as steps.attribute.gather_inputs gives


def class_stats_file(seed: int) -> str:
    """The file, in an attributor's folder, of one seed's class statistics (the distance score's state)."""
    return f"class_stats_seed{seed}.npz"


def open_set_holdout(settings: Settings, classes: list[str]) -> list[str]:
    """The generative models left out in turn: ``open_set_holdout`` ``each`` (all), ``auto`` (the last by name),
    a model's name, or ``none`` (no open-set evaluation). Two models at least are needed, so that one stays known
    besides ``real``; with fewer there is none."""
    choice, models = settings.open_set_holdout, classes[1:]
    if choice not in HOLDOUT_CHOICES and choice not in models:
        raise InputError(f"open_set_holdout = {choice!r} is neither one of {list(HOLDOUT_CHOICES)} nor one of the "
                         f"models {models}; set one of them")
    if choice == "none" or len(models) < 2:
        return []
    if choice == "each":
        return list(models)
    return [models[-1]] if choice == "auto" else [choice]


def open_set_seeds(settings: Settings) -> list[int]:
    """The seeds each left-out attributor is trained with: the first ``open_set_seeds`` of ``seeds``."""
    n = settings.open_set_seeds
    if n > len(settings.seeds):
        raise InputError(f"open_set_seeds = {n} exceeds the {len(settings.seeds)} seeds {list(settings.seeds)}; "
                         "lower it or add seeds")
    return list(settings.seeds[:n])


def network_outputs(results: list[FitResult], x: np.ndarray, device: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every seed network's class probabilities (seeds, n, classes) and penultimate features (one (n, D) each)."""
    probs, features = [], []
    for result in results:
        logits, feats = predict_logits(result, x, device=device, return_features=True)
        probs.append(softmax(logits))
        features.append(feats)
    return np.stack(probs), features


def knownness(score: str, seed_probs: np.ndarray, seed_features: list[np.ndarray] | None,
              statistics: list[ClassStatistics] | None) -> np.ndarray:
    """One open-set score's known-ness (n,) from every seed's probabilities, features and class statistics
    (the last two needed by the distance score only). The attributor step and queries both compute it here."""
    if score == MAX_SOFTMAX:
        return max_softmax(seed_probs)
    if score == MAHALANOBIS:
        if seed_features is None or statistics is None:
            raise InputError("the mahalanobis score needs every seed's features and class statistics")
        return mahalanobis(seed_features, statistics)
    raise InputError(f"open-set score {score!r} is not one of {list(SCORES)}")


def _class_statistics(results: list[FitResult], x_train: np.ndarray, y_train: np.ndarray,
                      device: str) -> list[ClassStatistics]:
    """Each seed network's class statistics, from its features of the training inputs."""
    return [fit_class_statistics(feats, y_train) for feats in network_outputs(results, x_train, device)[1]]


def _scores(results: list[FitResult], statistics: list[ClassStatistics], x: np.ndarray,
            device: str) -> dict[str, np.ndarray]:
    probs, features = network_outputs(results, x, device)
    return {score: knownness(score, probs, features, statistics) for score in SCORES}


def _leave_out(data: Split, classes: list[str], held: str, settings: Settings, seeds: list[int],
               device: str) -> OpenSetRow:
    """Train without ``held`` and measure every score on the test split (``held``'s samples being unknown)."""
    label = classes.index(held)
    known = [c for c in classes if c != held]
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[[classes.index(c) for c in known]] = np.arange(len(known))

    def keep(split: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = data[split]
        mask = y != label
        return x[mask], remap[y[mask]]

    (x_tr, y_tr), (x_va, y_va) = keep("train"), keep("val")
    results = [fit_attributor(x_tr, y_tr, x_va, y_va, len(known), settings.attributor, seed=seed, device=device)
               for seed in seeds]
    statistics = _class_statistics(results, x_tr, y_tr, device)
    val = _scores(results, statistics, x_va, device)
    x_te, y_te = data["test"]
    test = _scores(results, statistics, x_te, device)
    unknown = y_te == label
    thresholds = {s: acceptance_threshold(val[s], settings.open_set_accept) for s in SCORES}
    row = OpenSetRow(held_out=held, n_known=int((~unknown).sum()), n_unknown=int(unknown.sum()),
                     auroc={s: unknown_auroc(test[s][~unknown], test[s][unknown]) for s in SCORES},
                     rejected={s: rejected_share(test[s][unknown], thresholds[s]) for s in SCORES},
                     threshold=thresholds)
    logger.info("open set without %s: AUROC %s", held, ", ".join(f"{s} {row.auroc[s]:.4f}" for s in SCORES))
    return row


def evaluate_open_set(data: Split, classes: list[str], settings: Settings, device: str) -> OpenSetResult | None:
    """Every left-out model's row, and per score the mean ± std of the AUROC over them; ``chosen`` is the score
    with the higher mean AUROC (the first of SCORES on a tie). None when no model is left out."""
    held_out = open_set_holdout(settings, classes)
    if not held_out:
        return None
    seeds = open_set_seeds(settings)
    rows = [_leave_out(data, classes, held, settings, seeds, device) for held in held_out]
    auroc = {s: mean_std([r.auroc[s] for r in rows]) for s in SCORES}
    chosen = max(SCORES, key=lambda s: auroc[s][0])
    return OpenSetResult(scores=list(SCORES), chosen=chosen, seeds=seeds, accept=settings.open_set_accept,
                         rows=rows, auroc_mean={s: auroc[s][0] for s in SCORES},
                         auroc_std={s: auroc[s][1] for s in SCORES},
                         rejected_mean={s: float(np.mean([r.rejected[s] for r in rows])) for s in SCORES})


def feature_scores(results: list[FitResult], statistics: list[ClassStatistics], features: list[np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """Every open-set score's known-ness of samples, from each seed network's head applied to the samples'
    penultimate features (one (n, D) array per seed, in the order of ``results``)."""
    probs = np.stack([softmax(head_logits(*head_of(r), f)) for r, f in zip(results, features)])
    return {score: knownness(score, probs, features, statistics) for score in SCORES}


def operating_point(folder: Path, results: list[FitResult], features: list[Split], seeds: list[int], score: str,
                    accept: float) -> tuple[OperatingPoint, dict[str, str]]:
    """An attributor's operating point for ``score`` from its seed networks and every seed's penultimate features
    of each split (x, label; what ``features_seed{s}.npz`` stores), so no sample goes through a network again:
    the threshold ``accept`` of the validation images (every one of a known class) reach, and the share of the test
    images that do (the measured rate). Writes every seed's class statistics (fit on its training features) into
    ``folder``; returns their file hashes too."""
    statistics, hashes = [], {}
    for seed, split in zip(seeds, features):
        stats = fit_class_statistics(*split["train"])
        stats.save(folder / class_stats_file(seed))
        hashes[class_stats_file(seed)] = file_hash(folder / class_stats_file(seed))
        statistics.append(stats)
    val = feature_scores(results, statistics, [split["val"][0] for split in features])[score]
    test = feature_scores(results, statistics, [split["test"][0] for split in features])[score]
    threshold = acceptance_threshold(val, accept)
    return (OperatingPoint(score=score, accept=accept, threshold=threshold, n_val=len(val),
                           test_accepted=float((test >= threshold).mean())), hashes)


def seed_class_statistics(store: Store, method: Method, metrics: AttributorMetrics) -> list[ClassStatistics] | None:
    """Every seed's stored class statistics of a method whose operating point uses the distance score (in seed
    order), else None (the score needs none)."""
    point = metrics.operating_point
    if point is None or point.score != MAHALANOBIS:
        return None
    folder = store.method_dir(method)
    missing = [class_stats_file(s) for s in metrics.seeds if not (folder / class_stats_file(s)).is_file()]
    if missing:
        raise StoreError(f"attributor {method} uses the {MAHALANOBIS} open-set score but {folder} lacks {missing}; "
                         "materialize the attributor again")
    return [ClassStatistics.load(folder / class_stats_file(s)) for s in metrics.seeds]


def open_set_settings(settings: Settings, classes: list[str]) -> dict[str, object]:
    """The settings the open-set part reads, for the attributor's fingerprint."""
    return {"open_set_holdout": open_set_holdout(settings, classes), "open_set_seeds": open_set_seeds(settings),
            "open_set_accept": settings.open_set_accept}
