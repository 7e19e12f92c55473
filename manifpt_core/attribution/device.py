"""Device selection and the matching mixed-precision context."""

from __future__ import annotations

import contextlib

import torch

from manifpt_core.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """Map a device setting to a torch device string.

    ``"auto"`` gives ``"cuda"`` when a GPU is available and ``"cpu"`` otherwise;
    ``"cuda"`` without a GPU and any unknown name raise InputError.
    """
    if not isinstance(name, str) or name.strip().lower() not in DEVICE_CHOICES:
        raise InputError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    name = name.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    return name


def autocast_for(device: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (faster, no loss scaling needed); a no-op on CPU, where it rarely pays."""
    if device.startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
