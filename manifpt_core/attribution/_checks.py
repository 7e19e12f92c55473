"""Boundary checks for artifact arrays and labels, raising InputError that says how to fix."""

from __future__ import annotations

import numpy as np

from manifpt_core.errors import InputError

MIN_SIDE = 8  # the ResNet halves H and W twice; below 8 the last stage is degenerate


def check_artifacts(x: object, name: str, in_channels: int | None = None) -> np.ndarray:
    """Return ``x`` if it is a finite float32 array of images (N, C, H, W), H, W >= 8, or vectors (N, D).

    ``in_channels`` is C for images and D for vectors (what the network's first layer takes).
    """
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise InputError(f"{name} must have dtype float32, got {x.dtype}; convert with {name}.astype(np.float32)")
    if x.ndim not in (2, 4):
        raise InputError(f"{name} must be images (N, C, H, W) or vectors (N, D), got ndim={x.ndim} with shape {x.shape}")
    if x.shape[0] == 0:
        raise InputError(f"{name} is empty (shape {x.shape}); it needs at least one sample")
    if x.ndim == 4 and (x.shape[2] < MIN_SIDE or x.shape[3] < MIN_SIDE):
        raise InputError(f"{name} images must be at least {MIN_SIDE}x{MIN_SIDE}, got {x.shape[2]}x{x.shape[3]}")
    if in_channels is not None and x.shape[1] != in_channels:
        what = "channels" if x.ndim == 4 else "features"
        raise InputError(f"{name} has {x.shape[1]} {what} but the attributor expects {in_channels}")
    # A float64 sum of finite float32 values cannot overflow, so a non-finite sum means a
    # NaN/inf entry; this avoids allocating a boolean array as large as x.
    if not np.isfinite(x.sum(dtype=np.float64)):
        raise InputError(f"{name} contains NaN or infinite values; clean or drop those samples")
    return x


def check_labels(y: object, name: str, length: int, num_classes: int) -> np.ndarray:
    """Return ``y`` as int64 if it is a 1-D integer array of ``length`` labels in [0, num_classes)."""
    if not isinstance(y, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name} must have an integer dtype (int64), got {y.dtype}")
    if y.ndim != 1:
        raise InputError(f"{name} must have 1 dim (N,), got ndim={y.ndim} with shape {y.shape}")
    if len(y) != length:
        raise InputError(f"{name} has {len(y)} labels but there are {length} samples; lengths must match")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)]
        raise InputError(
            f"{name} has label(s) out of range [0, {num_classes}): e.g. {int(bad[0])} "
            f"({len(bad)} bad labels); check num_classes or the label encoding"
        )
    return y.astype(np.int64, copy=False)


def check_num_classes(num_classes: object) -> int:
    """Return ``num_classes`` if it is an int >= 2 (attribution needs at least two models)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise InputError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return int(num_classes)
