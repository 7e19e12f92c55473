"""Fréchet distance between Gaussian fits of two feature sets, and the pixel-PCA feature space.

The generator sanity check needs a *fixed* feature space that exists on a
machine with no downloaded networks: the top principal components of the real
reference images. It is a function of the data alone, so the distance of every
generator is measured in the same space.
"""

from __future__ import annotations

import numpy as np

PCA_DIM = 32


def features_to_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D), got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def covariance_root(sigma: np.ndarray) -> np.ndarray:
    """The symmetric positive semi-definite square root of a covariance matrix (eigenvalues rounding made
    negative count as zero)."""
    values, vectors = np.linalg.eigh(np.atleast_2d(sigma))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     root1: np.ndarray | None = None) -> float:
    """``|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``. ``root1``: sigma1's
    :func:`covariance_root`, when the caller measures sigma1 against several others (faster, same value)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    # Tr((sigma1 sigma2)^(1/2)) is the sum of the square roots of the eigenvalues of sigma1 sigma2, which are
    # real and non-negative for covariance matrices. Unlike a matrix square root of the product this stays exact
    # when the covariances are singular (fewer samples than dimensions); rounding's tiny negative or imaginary
    # parts are dropped. With sigma1's root R, they are those of the symmetric R sigma2 R: a symmetric
    # eigenvalue problem, several times faster than the general one.
    if root1 is not None:
        eigenvalues = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    else:
        eigenvalues = np.linalg.eigvals(sigma1 @ sigma2).real
    trace_covmean = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def fit_pca(images: np.ndarray, dim: int = PCA_DIM) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-``dim`` principal axes (D, dim) of uint8 images scaled to [0, 1]."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, vt[:dim].T


def pixel_pca_frechet(images: np.ndarray, real: np.ndarray, basis: tuple[np.ndarray, np.ndarray]) -> float:
    """Fréchet distance between two image sets in a pixel-PCA space (see module docstring)."""
    mean, axes = basis

    def project(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1).astype(np.float64) / 255.0 - mean) @ axes

    return frechet_distance(*features_to_statistics(project(images)), *features_to_statistics(project(real)))
