"""Open-set scores on seeded data, against direct formulas and cases with a known answer."""

import numpy as np
import pytest

from manifpt_core.metrics.openset import (
    ClassStatistics,
    distance_knownness,
    fit_class_statistics,
    mahalanobis,
    max_softmax,
    rejected_share,
    unknown_auroc,
)
from manifpt_core.metrics.separability import acceptance_threshold, open_set_auroc


def _clusters(centres: np.ndarray, n: int, seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(centres)), n)
    return centres[labels] + scale * rng.normal(size=(len(labels), centres.shape[1])), labels


def _ledoit_wolf_reference(z: np.ndarray) -> tuple[np.ndarray, float]:
    """The Ledoit-Wolf shrunk covariance of centred rows z, from its definition, sample by sample."""
    n, p = z.shape
    s = z.T @ z / n
    mu = np.trace(s) / p
    delta = np.sum((s - mu * np.eye(p)) ** 2) / p
    beta = sum(np.sum((np.outer(row, row) - s) ** 2) for row in z) / n**2 / p
    shrinkage = min(beta, delta) / delta
    return (1 - shrinkage) * s + shrinkage * mu * np.eye(p), shrinkage


def test_statistics_are_the_class_means_and_the_inverse_shrunk_pooled_covariance():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(3, 6))
    x, y = _clusters(centres, 40, seed=1)
    x = x @ rng.normal(size=(6, 6))  # correlated features
    stats = fit_class_statistics(x, y)
    means = np.stack([x[y == c].mean(axis=0) for c in range(3)])
    np.testing.assert_allclose(stats.means, means, rtol=1e-12)
    shrunk, shrinkage = _ledoit_wolf_reference(x - means[y])
    assert stats.shrinkage == pytest.approx(shrinkage, rel=1e-9)
    np.testing.assert_allclose(stats.precision @ shrunk, np.eye(6), atol=1e-8)


def test_distance_is_the_direct_mahalanobis_formula_to_the_nearest_class():
    rng = np.random.default_rng(2)
    x, y = _clusters(rng.normal(scale=2.0, size=(4, 5)), 30, seed=3)
    stats = fit_class_statistics(x, y)
    queries = rng.normal(scale=3.0, size=(25, 5))
    expected = [min(np.sqrt((q - m) @ stats.precision @ (q - m)) for m in stats.means) for q in queries]
    np.testing.assert_allclose(stats.distance(queries), expected, rtol=1e-9)


def test_more_feature_dimensions_than_samples_still_give_finite_distances():
    x, y = _clusters(np.eye(2, 50) * 5.0, 10, seed=4)  # 20 samples, 50 dimensions: a singular sample covariance
    stats = fit_class_statistics(x, y)
    assert stats.shrinkage > 0 and np.all(np.isfinite(stats.distance(x)))


def test_statistics_round_trip_through_npz_without_pickle(tmp_path):
    x, y = _clusters(np.eye(3, 4) * 4.0, 20, seed=5)
    stats = fit_class_statistics(x, y)
    stats.save(tmp_path / "stats.npz")
    with np.load(tmp_path / "stats.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["means", "precision", "shrinkage"]
    loaded = ClassStatistics.load(tmp_path / "stats.npz")
    np.testing.assert_array_equal(loaded.means, stats.means)
    np.testing.assert_array_equal(loaded.precision, stats.precision)
    assert loaded.shrinkage == stats.shrinkage


def test_an_unseen_far_cluster_is_rejected_by_distance_where_softmax_is_overconfident():
    # Two known classes at -3 e1 and +3 e1, a linear softmax classifier with the class means as weights; the
    # unseen cluster lies far out along e1, where that classifier is more confident than on its own classes.
    centres = np.array([[-3.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    x_train, y_train = _clusters(centres, 200, seed=6)
    x_known, _ = _clusters(centres, 100, seed=7)
    x_unknown, _ = _clusters(np.array([[15.0, 6.0, 0.0]]), 100, seed=8)
    stats = fit_class_statistics(x_train, y_train)

    def softmax_of(x):
        logits = x @ centres.T
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[None]

    softmax_auroc = unknown_auroc(max_softmax(softmax_of(x_known)), max_softmax(softmax_of(x_unknown)))
    distance_auroc = unknown_auroc(mahalanobis([x_known], [stats]), mahalanobis([x_unknown], [stats]))
    assert distance_auroc > 0.99 and softmax_auroc < 0.5


def test_known_ness_ranks_as_the_distance_and_the_threshold_accepts_the_stated_share():
    rng = np.random.default_rng(9)
    d_known, d_unknown = rng.gamma(2.0, size=(3, 200)), rng.gamma(3.0, size=(3, 150))
    k_known, k_unknown = distance_knownness(d_known), distance_knownness(d_unknown)
    np.testing.assert_allclose(k_known, 1.0 / (1.0 + d_known.mean(axis=0)))
    assert np.all((k_known > 0) & (k_known <= 1))
    # AUROC of rejecting by known-ness equals the AUROC of the mean distance as an unknown-ness score
    assert unknown_auroc(k_known, k_unknown) == pytest.approx(
        open_set_auroc(d_known.mean(axis=0), d_unknown.mean(axis=0)), abs=1e-12)
    threshold = acceptance_threshold(k_known, 0.95)
    assert 1 - rejected_share(k_known, threshold) >= 0.95
    assert rejected_share(k_known, np.nextafter(threshold, 2.0)) > 0.05  # the largest such threshold


def test_max_softmax_is_the_largest_mean_probability():
    probs = np.array([[[0.7, 0.3], [0.2, 0.8]], [[0.1, 0.9], [0.4, 0.6]]])
    np.testing.assert_allclose(max_softmax(probs), [0.6, 0.7])
    with pytest.raises(ValueError, match="seeds, n, classes"):
        max_softmax(probs[0])
