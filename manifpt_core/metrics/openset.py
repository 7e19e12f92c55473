"""Open-set scores of an attributor: is an image from one of the models it was trained on, or from another?

Two scores, both computed from what the attributor's seed networks give for an image:

- ``max_softmax``: the largest class probability of the seeds' mean softmax;
- ``mahalanobis``: the Mahalanobis distance of the penultimate features to the nearest known class, with class
  means and one shared covariance estimated from the known classes' training features (Ledoit-Wolf shrinkage, so
  that it is well conditioned even with fewer samples than feature dimensions), averaged over the seeds.

Convention, used everywhere: every score is a *known-ness* in (0, 1], higher meaning more likely known. The
distance ``d`` (averaged over seeds) becomes ``1 / (1 + d)``, a monotone map that changes no ranking, so AUROCs
and acceptance rates are those of the distance itself. An image is accepted as known when its known-ness reaches
the threshold of :func:`~manifpt_core.metrics.separability.acceptance_threshold`; :func:`unknown_auroc` gives the
AUROC of rejecting unknown images (1: every unknown image scores below every known one; below 0.5: the score is
more confident on unknown images than on known ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.covariance import ledoit_wolf

from manifpt_core.metrics.separability import open_set_auroc

MAX_SOFTMAX = "max_softmax"
MAHALANOBIS = "mahalanobis"
SCORES = (MAX_SOFTMAX, MAHALANOBIS)  # every open-set score, in the order reports list them
EIGEN_FLOOR = 1e-9  # covariance eigenvalues below this share of the largest are raised to it (a stable inverse)


def max_softmax(seed_probs: np.ndarray) -> np.ndarray:
    """Known-ness (n,) of the ``max_softmax`` score: the largest probability of the seeds' mean, from class
    probabilities (seeds, n, classes)."""
    probs = np.asarray(seed_probs, dtype=np.float64)
    if probs.ndim != 3:
        raise ValueError(f"expected probabilities of shape (seeds, n, classes), got {probs.shape}")
    return probs.mean(axis=0).max(axis=1)


def distance_knownness(seed_distances: np.ndarray) -> np.ndarray:
    """Known-ness (n,) ``1 / (1 + d)`` of distances (seeds, n), ``d`` their mean over seeds."""
    distances = np.asarray(seed_distances, dtype=np.float64)
    if distances.ndim != 2:
        raise ValueError(f"expected distances of shape (seeds, n), got {distances.shape}")
    return 1.0 / (1.0 + distances.mean(axis=0))


@dataclass(frozen=True)
class ClassStatistics:
    """What the Mahalanobis score needs of one network: the known classes' feature means (classes, D) and the
    precision (D, D), the inverse of their shared shrunk covariance."""

    means: np.ndarray
    precision: np.ndarray
    shrinkage: float

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance (n,) of each feature row (n, D) to the nearest class mean."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(f"expected features of shape (n, {self.means.shape[1]}), got {x.shape}")
        # precision = L @ L.T with L = V sqrt(w): the squared distance is the squared norm of (x - mean) @ L.
        w, v = np.linalg.eigh(self.precision)
        root = v * np.sqrt(np.clip(w, 0.0, None))
        y, centres = x @ root, self.means @ root
        squared = np.stack([((y - c) ** 2).sum(axis=1) for c in centres], axis=1)
        return np.sqrt(squared.min(axis=1))

    def save(self, path: Path) -> None:
        """An ``.npz`` of plain arrays (read back without pickle)."""
        np.savez(path, means=self.means, precision=self.precision, shrinkage=np.float64(self.shrinkage))

    @classmethod
    def load(cls, path: Path) -> ClassStatistics:
        with np.load(path, allow_pickle=False) as data:
            return cls(means=data["means"], precision=data["precision"], shrinkage=float(data["shrinkage"]))


def fit_class_statistics(features: np.ndarray, labels: np.ndarray) -> ClassStatistics:
    """Class means and the precision of the pooled within-class covariance of training features (n, D) with
    labels 0 .. classes-1, the covariance shrunk by Ledoit-Wolf and inverted through its eigendecomposition."""
    x, y = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"expected features (n, D) and labels (n,), got {x.shape} and {y.shape}")
    classes = np.unique(y)
    if not np.array_equal(classes, np.arange(len(classes))):
        raise ValueError(f"labels must be 0 .. classes-1, each present; got {classes.tolist()}")
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    covariance, shrinkage = ledoit_wolf(x - means[y], assume_centered=True)
    w, v = np.linalg.eigh(covariance)
    w = np.maximum(w, EIGEN_FLOOR * max(float(w.max()), np.finfo(np.float64).tiny))
    return ClassStatistics(means=means, precision=(v / w) @ v.T, shrinkage=float(shrinkage))


def mahalanobis(seed_features: list[np.ndarray], statistics: list[ClassStatistics]) -> np.ndarray:
    """Known-ness (n,) of the ``mahalanobis`` score: each seed network's features with its own statistics."""
    if len(seed_features) != len(statistics) or not statistics:
        raise ValueError(f"need one statistics per seed's features, got {len(statistics)} for {len(seed_features)}")
    return distance_knownness(np.stack([s.distance(f) for f, s in zip(seed_features, statistics)]))


def unknown_auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """AUROC of rejecting unknown images by known-ness: 1 when every unknown image scores below every known one,
    0.5 at chance, below 0.5 when the score is more confident on unknown images."""
    return open_set_auroc(-np.asarray(known, dtype=np.float64), -np.asarray(unknown, dtype=np.float64))


def rejected_share(knownness: np.ndarray, threshold: float) -> float:
    """The share of images judged unknown (known-ness below ``threshold``)."""
    scores = np.asarray(knownness, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("no scores to threshold")
    return float((scores < threshold).mean())
