"""Pixel-statistics baselines: McCloskey & Albright 2018 (saturated and under-exposed pixels) and
Nataraj et al. 2019 (co-occurrence matrices of horizontally adjacent pixels).

Images are ``(N, C, H, W)`` uint8 with values 0..255.
"""

from __future__ import annotations

import numpy as np

from manifpt_core.errors import InputError


def _check_uint8(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise InputError(f"images must be (N, C, H, W) uint8; got {images.dtype} of shape {images.shape}")
    return images


def saturation_counts(images: np.ndarray, under: int, over: int) -> np.ndarray:
    """Per image and channel, how many pixels are under-exposed (<= ``under``) and saturated (>= ``over``): (N, C, 2)."""
    images = _check_uint8(images)
    if not 0 <= under < over <= 255:
        raise InputError(f"baselines.mccloskey_under = {under} and _over = {over} must satisfy 0 <= under < over <= 255")
    return np.stack([(images <= under).sum(axis=(2, 3)), (images >= over).sum(axis=(2, 3))], axis=2)


def intensity_histogram(images: np.ndarray, bins: int) -> np.ndarray:
    """Per image and channel, the fraction of pixels in each of ``bins`` equal-width intensity bins: (N, C, bins)."""
    images = _check_uint8(images)
    if not 1 <= bins <= 256:
        raise InputError(f"baselines.mccloskey_bins = {bins} must be in 1..256")
    index = (images.astype(np.int64) * bins) // 256
    n, c = images.shape[:2]
    flat = (np.arange(n * c).reshape(n, c, 1, 1) * bins + index).ravel()
    counts = np.bincount(flat, minlength=n * c * bins).reshape(n, c, bins)
    return counts / (images.shape[2] * images.shape[3])


def mccloskey_features(images: np.ndarray, under: int, over: int, bins: int) -> np.ndarray:
    """McCloskey & Albright: per channel, the fractions of under-exposed and saturated pixels, then the
    intensity histogram: (N, C * (2 + bins)) float32."""
    images = _check_uint8(images)
    fractions = saturation_counts(images, under, over) / (images.shape[2] * images.shape[3])
    features = np.concatenate([fractions, intensity_histogram(images, bins)], axis=2)
    return features.reshape(len(images), -1).astype(np.float32)


def cooccurrence(images: np.ndarray, levels: int, chunk: int = 512) -> np.ndarray:
    """Nataraj et al.: per channel, counts of horizontally adjacent value pairs (left a, right b) after
    quantizing 0..255 to ``levels`` values: (N, C, levels, levels) float32, summing to H * (W - 1).

    Counted ``chunk`` images at a time, so the int64 scratch stays small at 256 levels.
    """
    images = _check_uint8(images)
    if not 2 <= levels <= 256:
        raise InputError(f"baselines.nataraj_levels = {levels} must be in 2..256")
    n, c = images.shape[:2]
    out = np.empty((n, c, levels, levels), dtype=np.float32)
    for start in range(0, n, chunk):
        q = (images[start : start + chunk].astype(np.int64) * levels) // 256
        m = len(q)
        pair = q[..., :-1] * levels + q[..., 1:]  # (m, C, H, W - 1)
        offset = np.arange(m * c).reshape(m, c, 1, 1) * levels * levels
        counts = np.bincount((offset + pair).ravel(), minlength=m * c * levels * levels)
        out[start : start + m] = counts.reshape(m, c, levels, levels)
    return out
