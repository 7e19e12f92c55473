"""Post-processing perturbations: deterministic, shape-keeping, and each doing what it says."""

import numpy as np
import pytest

from manifpt_core.config import PERTURBATION_NAMES
from manifpt_core.errors import InputError
from manifpt_core.perturb import PERTURBATIONS, half_size, perturb, random_perturbation


def natural_images(n: int, channels: int, size: int = 24, seed: int = 0) -> np.ndarray:
    """Smooth blobs of random colour over a fine texture: edges and flat parts, as photographs have."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(4, size - 4, (2, n, 1, 1, 1))
    radius = rng.uniform(2, 6, (n, 1, 1, 1))
    colour = rng.uniform(80, 200, (n, channels, 1, 1))
    blobs = colour * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    texture = rng.uniform(0, 40, (n, channels, size, size))
    return np.clip(20 + blobs + texture, 0, 255).astype(np.uint8)


def gaussian_blur_reference(images: np.ndarray, sigma: float) -> np.ndarray:
    """Direct 2-D convolution with a normalized Gaussian kernel cut at 4 sigma, edges mirrored (edge pixel repeated)."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel_1d = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel = np.outer(kernel_1d, kernel_1d) / kernel_1d.sum() ** 2
    n, c, h, w = images.shape
    padded = np.pad(images.astype(np.float64), ((0, 0), (0, 0), (radius, radius), (radius, radius)), mode="symmetric")
    out = np.zeros((n, c, h, w))
    for dy in offsets:
        for dx in offsets:
            out += kernel[dy + radius, dx + radius] * padded[:, :, radius + dy : radius + dy + h,
                                                             radius + dx : radius + dx + w]
    return out


def test_the_registry_has_every_configurable_name_in_order():
    assert tuple(PERTURBATIONS) == PERTURBATION_NAMES


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", PERTURBATION_NAMES)
def test_each_perturbation_is_deterministic_changes_the_image_and_keeps_its_format(name, channels):
    images = natural_images(6, channels)
    before = images.copy()
    out = perturb(images, name, seed=3)
    np.testing.assert_array_equal(images, before)  # the input is untouched
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, perturb(images, name, seed=3))
    changed = (out != images).reshape(len(images), -1).any(axis=1)
    assert changed.all(), f"{name} left {int((~changed).sum())} images unchanged"
    # Post-processing, not replacement: the image stays close to what it was.
    assert np.abs(out.astype(float) - images).mean() < 20


def test_noise_depends_on_the_seed_and_has_the_stated_spread():
    images = np.full((20, 3, 32, 32), 128, np.uint8)  # far from the clipping range
    first, second = perturb(images, "noise2", 0), perturb(images, "noise2", 1)
    assert (first != second).mean() > 0.5
    residual = first.astype(float) - 128
    assert abs(residual.mean()) < 0.05 and residual.std() == pytest.approx(np.sqrt(4 + 1 / 12), rel=0.03)


def test_noise_is_clipped_to_the_pixel_range():
    images = np.zeros((4, 1, 16, 16), np.uint8)
    images[:, :, :8] = 255
    out = perturb(images, "noise2", 0).astype(int)
    assert out[:, :, :8].max() == 255 and out[:, :, 8:].min() == 0  # no wrap-around


@pytest.mark.parametrize("channels", [1, 3])
def test_blur_is_a_gaussian_convolution_of_sigma_one(channels):
    images = natural_images(3, channels, size=17, seed=1)
    expected = gaussian_blur_reference(images, 1.0)
    out = perturb(images, "blur1", 0).astype(float)
    assert np.abs(out - expected).max() <= 0.5 + 1e-9  # rounding only
    # Per channel: blurring one channel leaves the others as they would be alone.
    if channels == 3:
        alone = perturb(np.ascontiguousarray(images[:, 1:2]), "blur1", 0)
        np.testing.assert_array_equal(out[:, 1:2], alone)


def test_stronger_jpeg_compression_changes_more():
    images = natural_images(8, 3, size=32, seed=2).astype(float)
    error = {q: np.abs(perturb(images.astype(np.uint8), f"jpeg{q}", 0) - images).mean() for q in (90, 75, 50)}
    assert 0 < error[90] < error[75] < error[50]


def test_resizing_keeps_what_half_the_resolution_holds():
    # A constant image survives any bilinear resizing; a one-pixel checkerboard (above half the resolution) does not.
    flat = np.full((1, 1, 13, 13), 90, np.uint8)
    np.testing.assert_array_equal(perturb(flat, "resize0.5", 0), flat)
    checker = (255 * (np.indices((13, 13)).sum(axis=0) % 2)).astype(np.uint8)[None, None]
    out = perturb(checker, "resize0.5", 0).astype(float)
    assert out.std() < 0.5 * checker.std()
    assert [half_size(n) for n in (13, 12, 1, 2)] == [7, 6, 1, 1]


def test_random_perturbation_draws_each_kind_and_is_seeded():
    images = natural_images(120, 1, size=16, seed=4)
    out = random_perturbation(images, np.random.default_rng(5))
    np.testing.assert_array_equal(out, random_perturbation(images, np.random.default_rng(5)))
    assert out.shape == images.shape and out.dtype == np.uint8
    # Every image is one of the six perturbations of itself (the noise with the draws this rng made).
    deterministic = [perturb(images, name, 0) for name in PERTURBATION_NAMES if name != "noise2"]
    matched = np.zeros(len(images), dtype=int)
    for version in deterministic:
        matched += (version == out).reshape(len(images), -1).all(axis=1)
    noisy = matched == 0
    residual = out[noisy].astype(float) - images[noisy]
    assert 0.1 < noisy.mean() < 0.3 and np.abs(residual).max() <= 10  # about one in six, a small change
    assert (matched > 0).mean() > 0.7


def test_bad_input_is_refused():
    images = natural_images(2, 1)
    with pytest.raises(InputError, match="unknown perturbation 'jpeg10'.*jpeg90"):
        perturb(images, "jpeg10", 0)
    for bad in (images.astype(np.float32), images[:, 0], np.zeros((2, 2, 8, 8), np.uint8), images.tolist()):
        with pytest.raises(InputError, match="uint8 images"):
            perturb(bad, "blur1", 0)
    with pytest.raises(InputError, match="uint8 images"):
        random_perturbation(images[0], np.random.default_rng(0))
