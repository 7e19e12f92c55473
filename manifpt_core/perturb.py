"""Post-processing of images, as a published image may undergo: JPEG, down-and-up resizing, blur, noise.

The robustness step applies each perturbation to the test images before they are embedded, and the
attributor's training-time augmentation (``attributor.augment = "perturb"``) draws one per training image.
Every function takes and returns uint8 images (n, C, H, W) with C = 1 or 3, and never changes its input.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from manifpt_core.errors import InputError

Perturbation = Callable[[np.ndarray, np.random.Generator], np.ndarray]

BLUR_SIGMA = 1.0  # pixels
NOISE_SIGMA = 2.0  # grey levels of 0..255: 2/255 of the range
RESIZE_FACTOR = 0.5


def check_images(images: object) -> np.ndarray:
    """The images as given, once they are uint8 (n, C, H, W) with C = 1 or 3."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        described = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise InputError(f"perturbations take uint8 images (n, C, H, W) with C = 1 or 3, got {described}; "
                         "convert the images to uint8 and put channels first")
    return images


def _to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[0]) if image.shape[0] == 1 else Image.fromarray(image.transpose(1, 2, 0))


def _from_pil(pil: Image.Image, channels: int) -> np.ndarray:
    pixels = np.asarray(pil.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _each(images: np.ndarray, one: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = one(image)
    return out


def jpeg(quality: int) -> Perturbation:
    """JPEG compression at ``quality`` (PIL's encoder, in memory), decoded back."""

    def apply(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        def one(image: np.ndarray) -> np.ndarray:
            buffer = io.BytesIO()
            _to_pil(image).save(buffer, format="JPEG", quality=quality)
            buffer.seek(0)
            with Image.open(buffer) as decoded:
                return _from_pil(decoded, image.shape[0])

        return _each(images, one)

    return apply


def half_size(length: int) -> int:
    """The side after resizing by RESIZE_FACTOR: rounded half up, at least one pixel."""
    return max(1, int(np.floor(length * RESIZE_FACTOR + 0.5)))


def resize_down_up(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bilinear resizing to half the height and width (rounded) and bilinear back to the original size."""
    h, w = images.shape[2:]

    def one(image: np.ndarray) -> np.ndarray:
        small = _to_pil(image).resize((half_size(w), half_size(h)), Image.Resampling.BILINEAR)
        return _from_pil(small.resize((w, h), Image.Resampling.BILINEAR), image.shape[0])

    return _each(images, one)


def blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of sigma BLUR_SIGMA per channel (kernel to 4 sigma, mirrored edges), rounded."""
    smooth = gaussian_filter(images.astype(np.float64), sigma=(0.0, 0.0, BLUR_SIGMA, BLUR_SIGMA), mode="reflect")
    return np.clip(np.rint(smooth), 0, 255).astype(np.uint8)


def noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of NOISE_SIGMA grey levels, rounded and clipped to 0..255."""
    noisy = images.astype(np.float64) + rng.normal(0.0, NOISE_SIGMA, images.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


# Keyed by config.PERTURBATION_NAMES, in that order.
PERTURBATIONS: dict[str, Perturbation] = {
    "jpeg90": jpeg(90),
    "jpeg75": jpeg(75),
    "jpeg50": jpeg(50),
    "resize0.5": resize_down_up,
    "blur1": blur,
    "noise2": noise,
}


def perturb(images: np.ndarray, name: str, seed: int) -> np.ndarray:
    """``images`` post-processed by the perturbation ``name``; the same seed gives the same images (only the
    noise draws from it)."""
    if name not in PERTURBATIONS:
        raise InputError(f"unknown perturbation {name!r}; valid ones: {', '.join(PERTURBATIONS)}")
    return PERTURBATIONS[name](check_images(images), np.random.default_rng(seed))


def random_perturbation(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image post-processed by one perturbation drawn uniformly from all of them (training augmentation)."""
    images = check_images(images)
    names = list(PERTURBATIONS)
    choice = rng.integers(0, len(names), size=len(images))
    out = np.empty_like(images)
    for k, name in enumerate(names):
        rows = np.flatnonzero(choice == k)
        if rows.size:
            out[rows] = PERTURBATIONS[name](images[rows], rng)
    return out
