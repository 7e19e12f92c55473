"""Metrics: small pure functions, each tested against a direct formula."""

from manifpt_core.metrics.frechet import (
    PCA_DIM,
    features_to_statistics,
    fit_pca,
    frechet_distance,
    pixel_pca_frechet,
)

__all__ = ["PCA_DIM", "features_to_statistics", "fit_pca", "frechet_distance", "pixel_pca_frechet"]
