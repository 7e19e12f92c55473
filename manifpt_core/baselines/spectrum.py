"""Frequency baselines: Durall et al. 2020 (azimuthal average of the log power spectrum) and
Dzanic et al. 2020 (power-law decay of the high-frequency reduced spectrum).

Both start from the grayscale image's centred 2-D power spectrum. Images are
``(N, C, H, W)`` uint8 or float; grayscale is the mean over channels.
"""

from __future__ import annotations

import numpy as np

from manifpt_core.errors import InputError

EPS = 1e-8  # keeps log() finite where the power is exactly zero


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[2] < 4 or images.shape[3] < 4:
        raise InputError(f"images must be (N, C, H, W) with H, W >= 4; got shape {images.shape}")
    return images


def power_spectrum(images: np.ndarray) -> np.ndarray:
    """|FFT|² of each grayscale image, shifted so that frequency 0 sits at (H // 2, W // 2); (N, H, W) float64."""
    gray = _check_images(images).astype(np.float64).mean(axis=1)
    return np.abs(np.fft.fftshift(np.fft.fft2(gray), axes=(-2, -1))) ** 2


def radius_bins(shape: tuple[int, int]) -> np.ndarray:
    """Integer radius (distance to the centre, truncated) of every frequency of a shifted (H, W) spectrum."""
    h, w = shape
    y, x = np.indices((h, w))
    return np.hypot(y - h // 2, x - w // 2).astype(np.int64)


def azimuthal_average(spectra: np.ndarray) -> np.ndarray:
    """Mean of each (H, W) map over the rings of equal integer radius: (N, r_max + 1).

    Every ring holds at least one frequency, so no bin is empty.
    """
    spectra = np.asarray(spectra, dtype=np.float64)
    squeeze = spectra.ndim == 2
    spectra = spectra[None] if squeeze else spectra
    r = radius_bins(spectra.shape[-2:]).ravel()
    counts = np.bincount(r)
    flat = spectra.reshape(len(spectra), -1)
    sums = np.stack([np.bincount(r, weights=row, minlength=len(counts)) for row in flat])
    out = sums / counts
    return out[0] if squeeze else out


def durall_features(images: np.ndarray) -> np.ndarray:
    """Durall et al.: the azimuthal average of the log power spectrum, min-max scaled per image (N, r_max + 1)."""
    profile = azimuthal_average(np.log(power_spectrum(images) + EPS))
    low, high = profile.min(axis=1, keepdims=True), profile.max(axis=1, keepdims=True)
    return ((profile - low) / np.maximum(high - low, EPS)).astype(np.float32)


def reduced_spectrum(spectra: np.ndarray) -> np.ndarray:
    """Dzanic et al.'s reduced spectrum: the azimuthal average of the power up to the Nyquist radius
    (min(H, W) // 2), divided by its value at frequency 0: (N, nyquist + 1), starting at 1."""
    profile = azimuthal_average(spectra)
    profile = profile if profile.ndim == 2 else profile[None]
    nyquist = min(np.asarray(spectra).shape[-2:]) // 2
    return profile[:, : nyquist + 1] / np.maximum(profile[:, :1], EPS)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average along the last axis over ``window`` bins (edges use the bins that exist)."""
    if window <= 1:
        return values
    kernel = np.ones(window)
    sums = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), -1, values)
    counts = np.convolve(np.ones(values.shape[-1]), kernel, mode="same")
    return sums / counts


def fit_power_law(radii: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Least-squares fit of log10 P = a - b log10 r per row of ``power`` over ``radii`` (all > 0).

    Returns (N, 3): the decay exponent b, and the fitted log10 power at the first and last radius.
    """
    radii = np.asarray(radii, dtype=np.float64)
    power = np.atleast_2d(np.asarray(power, dtype=np.float64))
    if radii.ndim != 1 or len(radii) < 2 or np.any(radii <= 0) or power.shape[1] != len(radii):
        raise InputError(f"fit_power_law needs >= 2 positive radii matching power's columns; "
                         f"got radii {radii.tolist()} and power of shape {power.shape}")
    lx = np.log10(radii)
    ly = np.log10(np.maximum(power, EPS))
    design = np.stack([np.ones_like(lx), lx], axis=1)
    coef, *_ = np.linalg.lstsq(design, ly.T, rcond=None)  # (2, N): intercept, slope
    a, slope = coef
    return np.stack([-slope, a + slope * lx[0], a + slope * lx[-1]], axis=1)


def high_frequency_radii(nyquist: int, fraction: float) -> np.ndarray:
    """The radii of the fitted high-frequency part: the top ``fraction`` of 1..nyquist (two at least)."""
    if not 0 < fraction <= 1:
        raise InputError(f"baselines.dzanic_fraction = {fraction!r} must be in (0, 1]")
    start = max(1, min(nyquist - 1, int(np.ceil((1 - fraction) * nyquist))))
    return np.arange(start, nyquist + 1)


def dzanic_from_spectra(spectra: np.ndarray, fraction: float, smooth: int) -> np.ndarray:
    """Dzanic et al. features of (N, H, W) power spectra: the power law fitted to the smoothed
    high-frequency part of the reduced spectrum (decay exponent, start and end log10 levels): (N, 3)."""
    reduced = reduced_spectrum(spectra)
    radii = high_frequency_radii(reduced.shape[1] - 1, fraction)
    smoothed = 10 ** _smooth(np.log10(np.maximum(reduced, EPS)), smooth)
    return fit_power_law(radii, smoothed[:, radii]).astype(np.float32)


def dzanic_features(images: np.ndarray, fraction: float, smooth: int) -> np.ndarray:
    """Dzanic et al. features of images (N, C, H, W): see :func:`dzanic_from_spectra`."""
    return dzanic_from_spectra(power_spectrum(images), fraction, smooth)
