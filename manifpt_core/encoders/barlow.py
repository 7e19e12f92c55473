"""Barlow Twins (Zbontar et al., 2021): the redundancy-reduction loss and the views it compares.

Two augmented views of each image go through the same network; the loss
pushes the cross-correlation matrix of their (batch-standardized) embeddings
towards the identity: equal on the diagonal (invariance to the augmentation),
uncorrelated off it (no redundant dimensions).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

# Batch standardization as in the paper's affine-free BatchNorm1d: biased variance, this epsilon.
BN_EPS = 1e-5

# Augmentation, after the paper's (random resized crop, flip, colour jitter, grey, blur), with
# a milder crop: a 28x28 image cropped to 8% of its area keeps too little to match its twin.
CROP_SCALE = (0.35, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
FLIP_P = 0.5
JITTER = 0.4  # brightness and contrast factors are drawn from [1 - JITTER, 1 + JITTER]
JITTER_P = 0.8
GREY_P = 0.2  # colour images only
BLUR_P = 0.5  # the paper blurs one view always and the other rarely; one function for both: 0.5
BLUR_SIGMA = (0.1, 2.0)  # in pixels
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's convert("L")


def augmentation_settings() -> dict[str, Any]:
    """The augmentation of :func:`augment`, JSON-safe, for the encoder card."""
    return {
        "crop_scale": list(CROP_SCALE), "crop_ratio": list(CROP_RATIO), "flip_p": FLIP_P, "jitter": JITTER,
        "jitter_p": JITTER_P, "grey_p": GREY_P, "blur_p": BLUR_P, "blur_sigma": list(BLUR_SIGMA),
    }


def _standardize(z: torch.Tensor) -> torch.Tensor:
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + BN_EPS)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> torch.Tensor:
    """Barlow Twins loss of two views' embeddings (N, D): sum_i (1 - c_ii)^2 + lambd * sum_{i != j} c_ij^2.

    ``c = z1s.T @ z2s / N`` is the cross-correlation of the embeddings after
    standardizing each dimension over the batch (mean 0, biased variance 1,
    epsilon :data:`BN_EPS`). Computed in float32 whatever the input precision.
    """
    if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(f"expected two (N, D) embeddings of equal shape with N >= 2, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    n = z1.shape[0]
    c = _standardize(z1.float()).T @ _standardize(z2.float()) / n
    on_diag = (1 - torch.diagonal(c)).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def _crop_flip_grid(n: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """Affine sampling grids (N, H, W, 2) of random resized crops, mirrored with probability FLIP_P."""
    area = _uniform(n, *CROP_SCALE, generator)
    ratio = torch.exp(_uniform(n, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator))
    # Crop width and height as fractions of the image (ratio = width / height), at most the whole image.
    cw = torch.sqrt(area * ratio).clamp(max=1.0)
    ch = torch.sqrt(area / ratio).clamp(max=1.0)
    # Centre in grid coordinates ([-1, 1]), so that the crop stays inside the image.
    cx = (1 - cw) * (2 * torch.rand(n, generator=generator, device=generator.device) - 1)
    cy = (1 - ch) * (2 * torch.rand(n, generator=generator, device=generator.device) - 1)
    flip = torch.where(torch.rand(n, generator=generator, device=generator.device) < FLIP_P, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=generator.device)
    theta[:, 0, 0], theta[:, 0, 2] = cw * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    return F.affine_grid(theta, [n, 1, h, w], align_corners=False)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with one sigma per sample (a sigma of 0 leaves the sample as it is)."""
    n, c, h, w = x.shape
    # Kernel of about a tenth of the image side, odd, as SimCLR/Barlow Twins do at 224 pixels.
    radius = max(1, round(0.05 * min(h, w)))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    weights = torch.exp(-offsets.pow(2) / (2 * sigma.clamp(min=1e-3)[:, None].pow(2)))
    weights = torch.where(sigma[:, None] > 0, weights, (offsets == 0).to(x.dtype).expand(n, -1))
    weights = weights / weights.sum(1, keepdim=True)
    k = weights.repeat_interleave(c, 0)  # one kernel per (sample, channel)
    flat = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, k.view(n * c, 1, 1, -1), groups=n * c)  # along W
    flat = F.conv2d(flat, k.view(n * c, 1, -1, 1), groups=n * c)  # along H
    return flat.view(n, c, h, w)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random view of each image of ``x`` (N, C, H, W), float in [0, 1]; same shape, still in [0, 1].

    Per sample: a random resized crop (area fraction in CROP_SCALE, aspect ratio in
    CROP_RATIO, bilinear, back to H x W), a horizontal flip, brightness and
    contrast jitter (with probability JITTER_P), conversion to grey (colour
    images, GREY_P) and a Gaussian blur (BLUR_P). Every random number is drawn
    from ``generator`` (on its own device), so a seeded generator gives the same
    views on any device.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float (N, C, H, W) batch, got {x.dtype} of shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    grid = _crop_flip_grid(n, h, w, generator).to(device=x.device, dtype=x.dtype)
    # Grid cells lie inside the image; "border" only guards the outermost half pixel.
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def per_sample(values: torch.Tensor) -> torch.Tensor:
        return values.to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)

    jitter = torch.rand(n, generator=generator, device=generator.device) < JITTER_P
    brightness = torch.where(jitter, _uniform(n, 1 - JITTER, 1 + JITTER, generator), 1.0)
    contrast = torch.where(jitter, _uniform(n, 1 - JITTER, 1 + JITTER, generator), 1.0)
    x = (x * per_sample(brightness)).clamp(0.0, 1.0)
    # Contrast blends with the mean grey level of the image, as torchvision's adjust_contrast.
    mean = x.mean(dim=(1, 2, 3), keepdim=True) if c != 3 else _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * per_sample(contrast) + mean).clamp(0.0, 1.0)
    if c == 3:
        grey = torch.rand(n, generator=generator, device=generator.device) < GREY_P
        x = torch.where(grey.to(x.device).view(n, 1, 1, 1), _grey(x).expand(-1, 3, -1, -1), x)
    blur = torch.rand(n, generator=generator, device=generator.device) < BLUR_P
    sigma = torch.where(blur, _uniform(n, *BLUR_SIGMA, generator), 0.0)
    return _blur(x, sigma.to(device=x.device, dtype=x.dtype))


def _grey(x: torch.Tensor) -> torch.Tensor:
    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * luma).sum(1, keepdim=True)
