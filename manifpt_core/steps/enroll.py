"""Enrolling new generative models into stored attributors (``attribution.retrain = "enroll"``).

When the attributor stored for a method was trained with the same settings on inputs that are unchanged for
every class it shares with the current model set, the models it lacks are enrolled as new output classes
(manifpt_core.attribution.enroll) and the models no longer registered lose their row. Its network below the head
stays as trained, so every class's penultimate features, stored per seed beside the weights
(``features_seed{s}.npz``), are reused: only the added models' samples go through the network. The cost is the
added models' own inputs plus a linear fit on features, with no term that retrains the models already known.

Open set: each left-out model's row is carried over from the stored attributor (its known classes are those of
the network trained without it), and each added model gets a row measured on the stored attributor, which was
trained without it: exactly a leave-it-out attributor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from manifpt_core.attribution import FitResult, confusion_matrix, load_attributor, predict_logits, save_attributor
from manifpt_core.attribution.enroll import enroll, head_logits, head_of
from manifpt_core.errors import StoreError
from manifpt_core.metrics.openset import (
    MAX_SOFTMAX,
    SCORES,
    ClassStatistics,
    rejected_share,
    unknown_auroc,
)
from manifpt_core.metrics.separability import acceptance_threshold, fd_ratio_reusing, mean_std
from manifpt_core.steps.open_set import class_stats_file, feature_scores, operating_point
from manifpt_core.store import SPLIT_NAMES
from manifpt_core.store.cache import load_record
from manifpt_core.store.hashing import file_hash
from manifpt_core.store.records import (
    AttributorMetrics,
    OpenSetResult,
    OpenSetRow,
    SeedResult,
    TrainingInfo,
)

logger = logging.getLogger(__name__)

# Settings that may differ between an attributor and the one it is enrolled from (they follow the model set).
CLASS_DEPENDENT = ("classes", "open_set_holdout", "training")

Features = dict[str, dict[str, np.ndarray]]  # split -> class -> penultimate features (n, D), in row order


def features_file(seed: int) -> str:
    """The file, in an attributor's folder, of one seed's penultimate features of every class's samples."""
    return f"features_seed{seed}.npz"


FD_PAIRS = ("fd_pairs.keys", "fd_pairs.values")  # not a split: load_features reads splits only


def save_features(path: Path, features: Features, fd_pairs: dict[str, float] | None = None) -> None:
    """One seed's features, keyed ``<split>.<class>`` (a class name has no dot), with the test features' class
    pair distances of its FD ratio (``fd_pairs``, from metrics.separability.fd_ratio_reusing) when given."""
    arrays = {f"{split}.{name}": x for split, by_class in features.items() for name, x in by_class.items()}
    if fd_pairs:
        arrays[FD_PAIRS[0]] = np.array(list(fd_pairs), dtype=str)
        arrays[FD_PAIRS[1]] = np.array(list(fd_pairs.values()), dtype=np.float64)
    np.savez(path, **arrays)


def load_fd_pairs(path: Path) -> dict[str, float]:
    """The class pair distances stored by :func:`save_features` ({} when it stored none)."""
    with np.load(path) as stored:
        if FD_PAIRS[0] not in stored:
            return {}
        return dict(zip(stored[FD_PAIRS[0]].tolist(), stored[FD_PAIRS[1]].tolist()))


def load_features(path: Path, classes: list[str]) -> Features:
    """The features of ``classes`` from a file written by :func:`save_features`."""
    with np.load(path) as stored:
        missing = [f"{split}.{name}" for split in SPLIT_NAMES for name in classes if f"{split}.{name}" not in stored]
        if missing:
            raise StoreError(f"{path} lacks the features {missing[:3]}; train the attributor in full "
                             "(attribution.retrain = 'full')")
        return {split: {name: stored[f"{split}.{name}"] for name in classes} for split in SPLIT_NAMES}


def split_features(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], classes: list[str]) -> Features:
    """Per split features (n, D) with labels (positions in ``classes``) regrouped per class."""
    return {split: {name: features[split][labels[split] == i] for i, name in enumerate(classes)}
            for split in features}


def stack(features: Features, split: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One split's features of ``classes`` in class order, and their labels (positions in ``classes``)."""
    parts = [features[split][name] for name in classes]
    return np.concatenate(parts), np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)])


def stacked(features: Features, classes: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every split's features of ``classes`` stacked as :func:`stack` does: (x, label) per split."""
    return {split: stack(features, split, classes) for split in SPLIT_NAMES}


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Base:
    """The stored attributor a method enrolls from: its folder, fingerprint, classes, settings and metrics."""

    folder: Path
    fingerprint: str
    classes: list[str]
    training: dict[str, Any]  # its fingerprint's "training" entry
    metrics: AttributorMetrics

    def descriptor(self, classes: list[str]) -> dict[str, Any]:
        """The "training" entry of the fingerprint for ``classes``: the base's own when they are its classes (so
        it is reused as stored), else an enrollment from it."""
        if classes == self.classes:
            return self.training
        return {"mode": "enrolled", "base": self.fingerprint}


def enrollment_base(folder: Path, step: str, version: str, inputs: dict[str, str], settings: dict[str, Any],
                    classes: list[str]) -> Base | None:
    """The attributor stored in ``folder`` if ``classes`` can be enrolled into it: same step version and
    settings (but the class-dependent ones), the same inputs for every class both have, one class at least in
    common besides ``real``, its features stored for every seed. Else None (a full training), saying why."""
    try:
        record = load_record(folder, AttributorMetrics)
    except StoreError as err:
        logger.warning("%s: the stored attributor is unreadable (%s); training in full", folder, err)
        return None
    if record is None:
        return None
    old = record.settings
    old_classes = list(old.get("classes", []))
    reasons = []
    if record.step != step or record.version != version:
        reasons.append(f"it was made by {record.step} version {record.version}, not {step} {version}")
    current = json.loads(json.dumps(settings))  # as stored: tuples become lists
    changed = sorted(k for k in set(old) | set(current)
                     if k not in CLASS_DEPENDENT and old.get(k) != current.get(k))
    if changed:
        reasons.append(f"its settings {changed} differ")
    stale = sorted(k for k in set(record.inputs) & set(inputs) if record.inputs[k] != inputs[k])
    if stale:
        reasons.append(f"the inputs {stale[:4]} changed")
    if not set(old_classes[1:]) & set(classes[1:]):
        reasons.append("it shares no generative model with the current set")
    seeds = record.summary.seeds
    missing = [features_file(s) for s in seeds if not (folder / features_file(s)).is_file()]
    if missing:
        reasons.append(f"it lacks {missing}")
    if record.summary.training is None:
        reasons.append("it predates enrollment")
    if reasons:
        if old_classes != classes:
            logger.info("%s: training in full, not enrolling: %s", folder, "; ".join(reasons))
        return None
    return Base(folder, record.fingerprint, old_classes, dict(old.get("training") or {}), record.summary)


@dataclass
class Enrolled:
    """An enrollment's outcome for one method: metrics, content hashes of what it wrote."""

    metrics: AttributorMetrics
    hashes: dict[str, str]


def enroll_attributors(base: Base, new_features: list[Features], classes: list[str], seeds: list[int],
                       tmp: Path, method: str, network: str, seed_metrics: Callable[..., AttributorMetrics],
                       open_set: tuple[float, list[str]] | None, features_name: str | None,
                       **extra: Any) -> Enrolled:
    """Enroll ``classes`` into ``base`` seed by seed, from the added classes' features of each seed's network
    (``new_features``, in ``seeds`` order) and the base's stored ones; write every seed's weights and features
    under ``tmp``. With ``open_set`` (the acceptance rate and the models left out), also the open-set rows and
    the operating point with every seed's class statistics (attributors and the control; a CNN baseline has
    none). ``seed_metrics`` is steps.attribute.seed_metrics, given ``extra``; ``features_name``: where the
    first seed's test features go (None: nowhere)."""
    added = [c for c in classes if c not in base.classes]
    removed = [c for c in base.classes if c not in classes]
    kept = [c for c in classes if c in base.classes]
    per_seed, matrices, hashes, results, all_features = [], [], {}, {}, {}
    tmp.mkdir(parents=True)
    for seed, fresh in zip(seeds, new_features):
        old = load_attributor(base.folder / f"seed{seed}.pt")
        features = load_features(base.folder / features_file(seed), kept)
        for split in SPLIT_NAMES:
            features[split].update(fresh[split])
        x_tr, y_tr = stack(features, "train", classes)
        result = enroll(old, base.classes, classes, x_tr, y_tr)
        weight, bias = head_of(result)
        x_va, y_va = stack(features, "val", classes)
        x_te, y_te = stack(features, "test", classes)
        y_pred = head_logits(weight, bias, x_te).argmax(axis=1)
        acc = float((y_pred == y_te).mean())
        val_acc = float((head_logits(weight, bias, x_va).argmax(axis=1) == y_va).mean())
        matrices.append(confusion_matrix(y_te, y_pred, len(classes)))
        previous = next((s for s in base.metrics.per_seed if s.seed == seed), None)
        # The kept classes' test features are the base's, so only the added classes' pairs are measured.
        fdr, fd_pairs = fd_ratio_reusing(x_te, y_te, seed, known=load_fd_pairs(base.folder / features_file(seed)))
        per_seed.append(SeedResult(seed=seed, test_accuracy=acc, fdr=fdr["fdr"],
                                   best_epoch=result.best_epoch, best_val_accuracy=val_acc,
                                   history=previous.history if previous else None))
        save_attributor(result, tmp / f"seed{seed}.pt")
        save_features(tmp / features_file(seed), features, fd_pairs)
        hashes[str(seed)] = file_hash(tmp / f"seed{seed}.pt")
        if seed == seeds[0] and features_name is not None:
            np.savez(tmp / features_name, features=x_te, labels=y_te)
        results[seed], all_features[seed] = result, features
        logger.info("attributor %s seed %d: enrolled %s (dropped %s), test accuracy %.4f", method, seed, added,
                    removed, acc)
    stats_hashes = {}
    if open_set is not None:
        accept, holdout = open_set
        rows = _open_set(base, dict(zip(seeds, new_features)), added, classes, holdout, accept)
        point, stats_hashes = operating_point(tmp, [results[s] for s in seeds],
                                              [stacked(all_features[s], classes) for s in seeds], seeds,
                                              rows.chosen if rows else MAX_SOFTMAX, accept)
        extra.update(open_set=rows, operating_point=point)
    previous = base.metrics.training
    training = previous if not added and not removed else TrainingInfo(
        mode="enrolled", trained_at=previous.trained_at, trunk_classes=previous.trunk_classes,
        enrolled=[c for c in [*previous.enrolled, *added] if c in classes], enrolled_at=now(),
        removed=sorted({*(previous.removed or []), *removed} & set(previous.trunk_classes)))
    metrics = seed_metrics(tmp, method, network, classes, per_seed, matrices,
                           n_split=tuple(len(stack(all_features[seeds[0]], s, classes)[1]) for s in SPLIT_NAMES),
                           features_file=features_name, training=training, **extra)
    return Enrolled(metrics, {**hashes, **stats_hashes})


def _open_set(base: Base, fresh: dict[int, Features], added: list[str], classes: list[str], holdout: list[str],
              accept: float) -> OpenSetResult | None:
    """The base's rows of the models still registered, and a row per added model measured on the base itself
    (``fresh``: per seed the added models' features, from the base's network below its head)."""
    previous = base.metrics.open_set
    if not holdout:
        return None
    seeds = previous.seeds if previous else base.metrics.seeds[:1]
    rows = [r for r in (previous.rows if previous else []) if r.held_out in classes and r.held_out not in added]
    known = [c for c in base.classes if c in classes]
    if added:
        results = [load_attributor(base.folder / f"seed{s}.pt") for s in seeds]
        statistics = [ClassStatistics.load(base.folder / class_stats_file(s)) for s in seeds]
        features = [load_features(base.folder / features_file(s), known) for s in seeds]
    for name in added:
        new = [fresh[seed]["test"][name] for seed in seeds]
        val = feature_scores(results, statistics, [stack(f, "val", known)[0] for f in features])
        x_known = [stack(f, "test", known)[0] for f in features]
        known_scores = feature_scores(results, statistics, x_known)
        unknown_scores = feature_scores(results, statistics, new)
        thresholds = {s: acceptance_threshold(val[s], accept) for s in SCORES}
        rows.append(OpenSetRow(held_out=name, n_known=len(x_known[0]), n_unknown=len(new[0]),
                               auroc={s: unknown_auroc(known_scores[s], unknown_scores[s]) for s in SCORES},
                               rejected={s: rejected_share(unknown_scores[s], thresholds[s]) for s in SCORES},
                               threshold=thresholds))
    if not rows:
        return None
    auroc = {s: mean_std([r.auroc[s] for r in rows]) for s in SCORES}
    return OpenSetResult(scores=list(SCORES), chosen=max(SCORES, key=lambda s: auroc[s][0]), seeds=list(seeds),
                         accept=accept, rows=rows, auroc_mean={s: auroc[s][0] for s in SCORES},
                         auroc_std={s: auroc[s][1] for s in SCORES},
                         rejected_mean={s: float(np.mean([r.rejected[s] for r in rows])) for s in SCORES})


def added_features(base: Base, data: dict[str, tuple[np.ndarray, np.ndarray]] | None, added: list[str],
                   seeds: list[int], device: str) -> list[Features]:
    """Per seed (in ``seeds`` order), the ``added`` classes' features from the base's network of that seed, given
    their inputs ``data`` (x, label per split, labels positions in ``added``); empty when nothing is added."""
    if not added or data is None:
        return [{split: {} for split in SPLIT_NAMES} for _ in seeds]
    return [network_features(load_attributor(base.folder / f"seed{s}.pt"), data, added, device) for s in seeds]


def network_features(result: FitResult, data: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str],
                     device: str) -> Features:
    """A network's penultimate features of ``data`` (x, label per split, labels positions in ``classes``)."""
    return split_features({split: predict_logits(result, x, device=device, return_features=True)[1]
                           for split, (x, _) in data.items()}, {split: y for split, (_, y) in data.items()},
                          classes)


def training_text(info: TrainingInfo | None) -> str:
    """How an attributor got its classes, in words: trained in full when, or which models were enrolled when."""
    if info is None:
        return "trained in full"
    if info.mode == "full":
        return f"trained in full at {info.trained_at}"
    removed = f"; dropped {', '.join(info.removed)}" if info.removed else ""
    return (f"enrolled {', '.join(info.enrolled) or 'no model'} (last at {info.enrolled_at}) into the network "
            f"trained in full at {info.trained_at} on {len(info.trunk_classes)} classes{removed}")
