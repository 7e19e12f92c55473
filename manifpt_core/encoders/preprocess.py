"""Preprocessing: how uint8 images become the float tensors an encoder reads.

Resizing filter, channel handling and normalization change the embeddings, so
they are one explicit, named value whose settings enter fingerprints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from manifpt_core.errors import InputError

FILTERS = ("nearest", "bilinear", "bicubic", "area")
CHANNELS = (1, 3)
# Names the resize implementation below; bump it when the numbers it gives change.
RESIZE_IMPL = "torch-interpolate-v1"
# torch's "nearest" picks floor(i * scale), shifted by half a pixel; "nearest-exact" matches PIL.
_MODES = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic", "area": "area"}


def check_images(images: Any, what: str = "images") -> None:
    """Raise TypeError unless ``images`` is a uint8 array (or tensor) of shape (N, C, H, W)."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
        return
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4:
        return
    got = f"{images.dtype} array of shape {tuple(images.shape)}" if hasattr(images, "shape") else type(images).__name__
    raise TypeError(f"{what} must be uint8 of shape (N, C, H, W), got {got}")


def _floats(value: Any, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"preprocess {what} must be a sequence of numbers, got {value!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise InputError(f"preprocess {what} must be finite, got {list(out)}")
    return out


@dataclass(frozen=True)
class Preprocess:
    """uint8 (N, C, H, W) -> float32 (N, channels, H', W'): scale to [0, 1], resize, set channels, normalize.

    ``size`` is the (H, W) to resize to (None keeps the native size). Resizing
    uses ``torch.nn.functional.interpolate`` on the [0, 1] float image: bilinear
    and bicubic antialiased (so downsampling averages like PIL), nearest as
    PIL's nearest, area as box averaging; the result is clamped to [0, 1] (bicubic
    overshoots). ``channels=3`` with 1-channel input replicates the grey channel;
    any other channel change is refused. ``mean``/``std`` are per output channel,
    on the [0, 1] scale.
    """

    size: tuple[int, int] | None = None
    filter: str = "bilinear"
    channels: int = 1
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        if self.size is not None:
            size = tuple(self.size) if isinstance(self.size, (list, tuple)) else ()
            if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
                raise InputError(f"preprocess size must be None or two positive integers (H, W), got {self.size!r}")
            object.__setattr__(self, "size", size)
        if self.filter not in FILTERS:
            raise InputError(f"preprocess filter {self.filter!r} is not one of {', '.join(FILTERS)}")
        if isinstance(self.channels, bool) or not isinstance(self.channels, int) or self.channels not in CHANNELS:
            raise InputError(f"preprocess channels must be one of {CHANNELS}, got {self.channels!r}")
        mean, std = _floats(self.mean, "mean"), _floats(self.std, "std")
        if len(mean) != self.channels or len(std) != self.channels:
            raise InputError(
                f"preprocess mean and std need one value per output channel ({self.channels}), "
                f"got mean={list(mean)} std={list(std)}"
            )
        if min(std) <= 0:
            raise InputError(f"preprocess std must be > 0, got {list(std)}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def settings(self) -> dict[str, Any]:
        """The settings as a JSON-safe dict (lists for tuples), with the resize implementation named."""
        return {
            "size": None if self.size is None else list(self.size),
            "filter": self.filter,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": RESIZE_IMPL,
        }

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Preprocess:
        """The Preprocess whose :meth:`settings` are ``settings``; another resize implementation is refused."""
        valid = ("size", "filter", "channels", "mean", "std", "resize")
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise InputError(f"unknown preprocess key(s) {unknown}; valid keys: {list(valid)}")
        if settings.get("resize", RESIZE_IMPL) != RESIZE_IMPL:
            raise InputError(
                f"preprocess resize {settings['resize']!r} was made by another version of manifpt "
                f"(this one resizes with {RESIZE_IMPL!r}); rebuild the encoder"
            )
        args = {k: v for k, v in settings.items() if k != "resize"}
        if args.get("size") is not None:
            args["size"] = tuple(args["size"])
        return cls(**args)

    def scale(self, images: np.ndarray | torch.Tensor, device: str = "cpu") -> torch.Tensor:
        """uint8 images -> float32 in [0, 1] on ``device``, resized and with ``channels`` channels."""
        check_images(images)
        c = images.shape[1]
        if c != self.channels and not (c == 1 and self.channels == 3):
            raise InputError(
                f"images have {c} channel(s) but this preprocessing gives {self.channels}; only grey images "
                f"can be widened (to 3 channels), so give images with {self.channels} channel(s)"
            )
        x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
        x = x.to(device=device).to(torch.float32).div_(255.0)
        if self.size is not None and tuple(x.shape[-2:]) != self.size and x.shape[0] > 0:
            mode = _MODES[self.filter]
            antialias = mode in ("bilinear", "bicubic")
            x = F.interpolate(x, size=self.size, mode=mode, antialias=antialias,
                              **({"align_corners": False} if antialias else {}))
            x = x.clamp_(0.0, 1.0)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel, for x in [0, 1] as :meth:`scale` gives it."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def apply(self, images: np.ndarray | torch.Tensor, device: str = "cpu") -> torch.Tensor:
        """uint8 (N, C, H, W) -> float32 (N, channels, H', W') on ``device``: :meth:`scale`, then :meth:`normalize`."""
        return self.normalize(self.scale(images, device))
