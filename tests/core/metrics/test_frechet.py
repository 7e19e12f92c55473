"""Fréchet distance against closed forms, and the pixel-PCA sanity distance."""

import numpy as np
import pytest

from manifpt_core.metrics import (
    features_to_statistics,
    fit_pca,
    frechet_distance,
    pixel_pca_frechet,
)
from manifpt_core.metrics.frechet import covariance_root


def test_diagonal_gaussians_have_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_general_covariances_match_the_trace_formula():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((4, 4))
    s1 = m @ m.T + np.eye(4)
    s2 = 2.0 * s1  # commuting: sqrt(s1 s2) = sqrt(2) s1
    expected = np.trace(s1) + np.trace(s2) - 2 * np.sqrt(2) * np.trace(s1)
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(np.ones(4), s1, np.ones(4), s1) == pytest.approx(0.0, abs=1e-8)


def test_samples_of_one_distribution_are_close_and_shifts_are_far():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4000, 3)), rng.standard_normal((4000, 3))
    near = frechet_distance(*features_to_statistics(a), *features_to_statistics(b))
    far = frechet_distance(*features_to_statistics(a), *features_to_statistics(b + 2.0))
    assert near < 0.02 and far == pytest.approx(12.0, rel=0.05)


def test_pixel_pca_distance_separates_noise_from_data():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:8, 0:8]
    def blobs(n):
        c = rng.uniform(2, 6, (2, n, 1, 1))
        return (255 * np.exp(-((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / 4)).astype(np.uint8)[:, None]
    real, held_out = blobs(500), blobs(500)
    noise = rng.integers(0, 256, (500, 1, 8, 8), dtype=np.uint8)
    basis = fit_pca(real, dim=8)
    assert pixel_pca_frechet(held_out, real, basis) < 0.1 * pixel_pca_frechet(noise, real, basis)


def test_singular_covariances_give_a_finite_distance_matching_the_full_rank_formula():
    # fewer samples than dimensions: both covariances are singular
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(20, 64)), rng.normal(size=(20, 64)) + 0.5
    d = frechet_distance(*features_to_statistics(a), *features_to_statistics(b))
    assert np.isfinite(d) and d > 0
    # identical sets are at distance 0 even when singular
    assert abs(frechet_distance(*features_to_statistics(a), *features_to_statistics(a))) < 1e-4


@pytest.mark.parametrize(("n", "d"), [(400, 8), (30, 64)])  # full rank, then singular covariances
def test_the_root_path_gives_the_general_eigenvalue_path_value(n, d):
    """With sigma1's square root given, the trace term comes from a symmetric eigenproblem: the same distance."""
    rng = np.random.default_rng(d)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.2
    (mu1, s1), (mu2, s2) = features_to_statistics(a), features_to_statistics(b)
    root = covariance_root(s1)
    np.testing.assert_allclose(root @ root, s1, atol=1e-10)
    np.testing.assert_allclose(root, root.T)
    # Singular covariances: the square roots of rounding-level eigenvalues (about 1e-7 each) differ by path.
    assert frechet_distance(mu1, s1, mu2, s2, root1=root) == pytest.approx(frechet_distance(mu1, s1, mu2, s2),
                                                                          rel=1e-8)
