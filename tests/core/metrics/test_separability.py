"""Separability metrics on seeded data with known answers."""

import numpy as np
import pytest

from manifpt_core.metrics import separability
from manifpt_core.metrics.separability import (
    fd_ratio,
    fd_ratio_reusing,
    mean_std,
    nmi_per_factor,
    open_set_auroc,
)


def _gaussians(shift: float, n: int = 400, dim: int = 4, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n)
    features = rng.normal(size=(len(labels), dim)) + shift * np.eye(classes, dim)[labels]
    return features, labels


def test_fd_ratio_is_about_one_for_one_distribution_and_grows_with_separation():
    same = fd_ratio(*_gaussians(0.0))["fdr"]
    assert 0.5 < same < 2.0
    ratios = [fd_ratio(*_gaussians(shift))["fdr"] for shift in (1.0, 2.0, 4.0)]
    assert same < ratios[0] < ratios[1] < ratios[2]
    assert ratios[2] > 20


def test_fd_ratio_inter_term_matches_the_direct_formula():
    features, labels = _gaussians(3.0, classes=2, seed=1)
    a, b = features[labels == 0], features[labels == 1]
    diff = a.mean(0) - b.mean(0)
    # the covariances are close to the identity, so FD is close to |mu_a - mu_b|^2 = 2 * 3^2
    assert fd_ratio(features, labels)["inter"] == pytest.approx(diff @ diff, rel=0.05)
    with pytest.raises(ValueError, match="at least 2 classes"):
        fd_ratio(features[labels == 0], labels[labels == 0])


def test_fd_ratio_reusing_known_pairs_measures_only_the_new_classs_pairs_and_gives_the_same_ratio(monkeypatch):
    rng = np.random.default_rng(3)
    features, labels = _gaussians(2.0, n=60, dim=6, classes=5, seed=3)
    features += rng.normal(size=features.shape)  # unequal covariances, so every pair's distance differs
    old = labels != 2  # class 2 is added later, between the others: the labels after it shift
    _, known = fd_ratio_reusing(features[old], np.where(labels[old] > 2, labels[old] - 1, labels[old]), seed=7)
    assert len(known) == 6  # 4 classes, every pair
    measured = []
    real = separability.frechet_distance
    monkeypatch.setattr(separability, "frechet_distance",
                        lambda *a, **k: measured.append(k.get("root1") is not None) or real(*a, **k))
    ratio, pairs = fd_ratio_reusing(features, labels, seed=7, known=known)
    assert measured.count(True) - 5 == 4  # the intra-class halves (5) and the new class's 4 pairs
    assert set(known) <= set(pairs) and len(pairs) == 10
    monkeypatch.setattr(separability, "frechet_distance", real)
    assert ratio == fd_ratio(features, labels, seed=7)  # bit for bit
    # A pair whose class changed is measured again, not read back.
    moved = features.copy()
    moved[labels == 0] += 1.0
    assert fd_ratio_reusing(moved, labels, seed=7, known=pairs)[0] == fd_ratio(moved, labels, seed=7)


def test_nmi_is_one_for_a_factor_the_features_separate_and_near_zero_for_an_unrelated_one():
    rng = np.random.default_rng(0)
    models = np.repeat(["a", "b", "c", "d"], 100)
    loss = {"a": "gan", "b": "gan", "c": "vae", "d": "vae"}
    features = np.where(np.isin(models, ["a", "b"]), 0.0, 10.0)[:, None] + rng.normal(0, 0.1, (400, 2))
    factors = {m: {"loss": loss[m], "skip": "yes" if m in "ac" else "no", "norm": "batch"} for m in "abcd"}
    nmi = nmi_per_factor(features, models, factors)
    assert nmi["loss"] == pytest.approx(1.0)
    assert nmi["skip"] < 0.05
    assert np.isnan(nmi["norm"])
    with pytest.raises(ValueError, match="no design factors"):
        nmi_per_factor(features, np.repeat(["a", "x"], 200), factors)


def test_open_set_auroc_is_half_on_indistinguishable_data_and_one_on_separated():
    rng = np.random.default_rng(0)
    assert open_set_auroc(rng.normal(size=5000), rng.normal(size=5000)) == pytest.approx(0.5, abs=0.02)
    assert open_set_auroc(np.zeros(10), np.ones(10)) == 1.0


def test_accuracy_aggregation_over_seeds_is_exact():
    assert mean_std([0.5, 0.7, 0.9]) == pytest.approx((0.7, 0.2))
    assert mean_std([0.8]) == (0.8, None)


def test_the_nmi_clusters_on_one_blas_thread(blas_threads_in):
    from sklearn.cluster import KMeans

    counts = blas_threads_in(KMeans)
    models = np.repeat(["a", "b", "c"], 50)
    factors = {m: {"loss": "gan" if m == "a" else "vae", "upsampling": m} for m in "abc"}
    nmi_per_factor(np.random.default_rng(1).normal(size=(150, 8)), models, factors)
    assert counts == [1, 1]
