"""Baselines of the paper's Table 2: colour, co-occurrence, spectral and raw-image fingerprints.

Feature functions take ``(N, C, H, W)`` uint8 images; each baseline pairs one with
its classifier (``settings.CATALOGUE``). ``features_of`` is the one entry point.
"""

from __future__ import annotations

import numpy as np

from manifpt_core.baselines.augment import BlurJpeg, jpeg_roundtrip
from manifpt_core.baselines.classifiers import CLASSICAL, fit_classical, standardized
from manifpt_core.baselines.pixels import (
    cooccurrence,
    intensity_histogram,
    mccloskey_features,
    saturation_counts,
)
from manifpt_core.baselines.settings import CATALOGUE, BaselineSettings
from manifpt_core.baselines.spectrum import (
    azimuthal_average,
    durall_features,
    dzanic_features,
    dzanic_from_spectra,
    fit_power_law,
    power_spectrum,
    reduced_spectrum,
)


def features_of(name: str, images: np.ndarray, settings: BaselineSettings) -> np.ndarray:
    """A baseline's input to its classifier: a vector per image, or an image for the CNNs (float32)."""
    if name == "mccloskey":
        return mccloskey_features(images, settings.mccloskey_under, settings.mccloskey_over, settings.mccloskey_bins)
    if name == "nataraj":
        return cooccurrence(images, settings.nataraj_levels)
    if name in ("durall-lr", "durall-svm"):
        return durall_features(images)
    if name == "dzanic":
        return dzanic_features(images, settings.dzanic_fraction, settings.dzanic_smooth)
    if name == "raw-blurjpeg":
        return np.asarray(images, np.float32) / np.float32(255.0)
    raise KeyError(name)


def augmentation_of(name: str, settings: BaselineSettings) -> BlurJpeg | None:
    """The training-time augmentation of a baseline (only the augmented raw-image CNN has one)."""
    if name != "raw-blurjpeg":
        return None
    return BlurJpeg(settings.blur_prob, settings.blur_sigma_max, settings.jpeg_prob, settings.jpeg_quality_min)


__all__ = [
    "CATALOGUE",
    "CLASSICAL",
    "BaselineSettings",
    "BlurJpeg",
    "augmentation_of",
    "azimuthal_average",
    "cooccurrence",
    "durall_features",
    "dzanic_features",
    "dzanic_from_spectra",
    "features_of",
    "fit_classical",
    "fit_power_law",
    "intensity_histogram",
    "jpeg_roundtrip",
    "mccloskey_features",
    "power_spectrum",
    "reduced_spectrum",
    "saturation_counts",
    "standardized",
]
