"""Blur and JPEG augmentation of training images (Wang et al. 2020), for the raw-image CNN baseline."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class BlurJpeg:
    """Each image is blurred with probability ``blur_prob`` (Gaussian, sigma ~ U[0, blur_sigma_max]), then
    JPEG-compressed with probability ``jpeg_prob`` (quality ~ U{jpeg_quality_min..100}).

    Called on a training batch of (B, C, H, W) float32 in [0, 1]; returns a new batch, the input untouched.
    """

    blur_prob: float = 0.5
    blur_sigma_max: float = 3.0
    jpeg_prob: float = 0.5
    jpeg_quality_min: int = 30

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.array(batch, dtype=np.float32, copy=True)
        for i in range(len(out)):
            if rng.random() < self.blur_prob:
                sigma = rng.uniform(0.0, self.blur_sigma_max)
                out[i] = gaussian_filter(out[i], sigma=(0.0, sigma, sigma), mode="reflect")
            if rng.random() < self.jpeg_prob:
                out[i] = jpeg_roundtrip(out[i], int(rng.integers(self.jpeg_quality_min, 101)))
        return out


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """One (C, H, W) image in [0, 1] (C = 1 or 3) through JPEG at ``quality`` and back."""
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    pil = Image.fromarray(pixels[0]) if pixels.shape[0] == 1 else Image.fromarray(pixels.transpose(1, 2, 0))
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert("L" if pixels.shape[0] == 1 else "RGB"), dtype=np.float32)
    decoded = decoded[None] if pixels.shape[0] == 1 else decoded.transpose(2, 0, 1)
    return decoded / 255.0
