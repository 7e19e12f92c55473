"""How separable, how structured and how recognisable fingerprints are: FD ratio, NMI per design factor,
open-set AUROC, and accuracy over seeds.

Each is a small function of feature arrays and labels, tested against cases
with a known answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from itertools import combinations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score

from manifpt_core.blas import one_blas_thread
from manifpt_core.metrics.frechet import covariance_root, features_to_statistics, frechet_distance


def _halves(rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of equal size (one row dropped when the count is odd)."""
    order = rng.permutation(rows)
    half = len(order) // 2
    return order[:half], order[half : 2 * half]


def class_digest(rows: np.ndarray) -> str:
    """A key of one class's feature rows (their float64 values, shape and order): two calls that see the same
    rows of a class get the same key."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    digest = hashlib.blake2b(str(rows.shape).encode(), digest_size=12)
    digest.update(rows.data)
    return digest.hexdigest()


def fd_ratio(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Inter-class over intra-class Fréchet distance (the FDR of ManiFPT's appendix C).

    Inter-class: the mean FD between the features of every pair of different
    classes. Intra-class: for each class, the FD between two disjoint halves of
    equal size of its features (a seeded split), averaged over classes. Returns
    ``{"fdr", "inter", "intra"}``; about 1 for classes drawn from one distribution,
    growing with their separation.
    """
    return fd_ratio_reusing(features, labels, seed)[0]


def fd_ratio_reusing(features: np.ndarray, labels: np.ndarray, seed: int = 0,
                     known: Mapping[str, float] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """:func:`fd_ratio`, reading from ``known`` the inter-class distances of class pairs measured before (keyed
    ``"<digest>|<digest>"`` by :func:`class_digest` of the two classes, lower label first), and returning with
    the ratio every pair's distance of this call so keyed: when a class is added to classes whose features did
    not change, only its own pairs are measured, not the M² of them. Same value as measuring every pair."""
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"the FD ratio needs at least 2 classes, got {len(classes)}")
    rng = np.random.default_rng(seed)
    rows = {c: features[labels == c] for c in classes}
    digests = {c: class_digest(rows[c]) for c in classes}
    stats = {c: features_to_statistics(rows[c]) for c in classes}
    roots: dict = {}  # each class's covariance root, computed once for all its pairs
    known = known or {}
    pairs, distances = {}, []
    for a, b in combinations(classes, 2):
        key = f"{digests[a]}|{digests[b]}"
        if key in known:
            pairs[key] = float(known[key])
        else:
            if a not in roots:
                roots[a] = covariance_root(stats[a][1])
            pairs[key] = frechet_distance(*stats[a], *stats[b], root1=roots[a])
        distances.append(pairs[key])
    inter = np.mean(distances)
    intra_per_class = []
    for c in classes:
        first, second = _halves(np.flatnonzero(labels == c), rng)
        if len(first) < 2:
            raise ValueError(f"class {c} has {int((labels == c).sum())} samples; the intra-class FD needs at least 4")
        mu1, sigma1 = features_to_statistics(features[first])
        intra_per_class.append(frechet_distance(mu1, sigma1, *features_to_statistics(features[second]),
                                                root1=covariance_root(sigma1)))
    intra = float(np.mean(intra_per_class))
    ratio = {"fdr": float(inter / intra) if intra > 0 else float("inf"), "inter": float(inter), "intra": intra}
    return ratio, pairs


def nmi_per_factor(features: np.ndarray, models: np.ndarray, factors: dict[str, dict[str, str]],
                   seed: int = 0) -> dict[str, float]:
    """NMI between a k-means clustering of fingerprint features and the grouping of their models by each factor.

    ``models[i]`` names the generative model of sample ``i``; ``factors[model][factor]``
    is that model's value of a design factor (e.g. ``upsampling``). For each factor,
    the features are clustered into as many clusters as the factor has distinct
    values, and the clustering is compared with the factor's grouping of the
    samples (ManiFPT's Table 5). A factor with one value carries no information
    and gets NaN.
    """
    features, models = np.asarray(features, dtype=np.float64), np.asarray(models)
    missing = sorted(set(models) - set(factors))
    if missing:
        raise ValueError(f"no design factors for model(s) {missing}")
    names = sorted({name for values in factors.values() for name in values})
    out = {}
    for name in names:
        truth = np.array([factors[m].get(name, "n/a") for m in models])
        k = len(np.unique(truth))
        if k < 2:
            out[name] = float("nan")
            continue
        with one_blas_thread():
            clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(features)
        out[name] = float(normalized_mutual_info_score(truth, clusters))
    return out


def open_set_auroc(known_scores: np.ndarray, unknown_scores: np.ndarray) -> float:
    """AUROC of telling samples of a held-out model (``unknown``) from known ones by a score that is
    higher for unknown samples (e.g. 1 - max softmax). 0.5 when the two are indistinguishable."""
    known, unknown = np.asarray(known_scores, dtype=np.float64), np.asarray(unknown_scores, dtype=np.float64)
    if known.size == 0 or unknown.size == 0:
        raise ValueError("open-set AUROC needs scores of both known and unknown samples")
    y = np.r_[np.zeros(known.size), np.ones(unknown.size)]
    return float(roc_auc_score(y, np.r_[known, unknown]))


def acceptance_threshold(known_scores: np.ndarray, accept: float) -> float:
    """The largest threshold ``t`` such that at least ``accept`` of ``known_scores`` are ``>= t`` (a sample is
    accepted as known when its confidence score reaches ``t``)."""
    scores = np.sort(np.asarray(known_scores, dtype=np.float64))
    if scores.size == 0:
        raise ValueError("an acceptance threshold needs the scores of known samples")
    if not 0.0 < accept <= 1.0:
        raise ValueError(f"accept = {accept!r} must be in (0, 1]")
    n_rejected = int(np.floor(scores.size * (1.0 - accept) + 1e-9))  # at most this many fall below t
    return float(scores[min(n_rejected, scores.size - 1)])


def mean_std(values: list[float] | np.ndarray) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1) over seeds; the std of one seed is unknown (None)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to aggregate")
    return float(values.mean()), (float(values.std(ddof=1)) if values.size > 1 else None)
