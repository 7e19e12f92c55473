"""Saving and loading a trained attributor as a weights_only-safe torch file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from manifpt_core.attribution.result import FitResult, FitSettings
from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import load_tagged, save_torch

FORMAT = "manifpt-attributor"
FORMAT_VERSION = 2
_KEYS = ("format", "version", "state_dict", "mean", "std", "best_epoch", "best_val_accuracy",
         "num_classes", "in_channels", "input_ndim", "settings", "history")


def save_attributor(result: FitResult, path: str | os.PathLike) -> Path:
    """Write ``result`` to ``path`` atomically (see :func:`~manifpt_core.torch_helpers.save_torch`).

    Only tensors and plain Python values are stored, so :func:`load_attributor` can use
    ``torch.load(weights_only=True)``. Returns the path written.
    """
    if not isinstance(result, FitResult):
        raise InputError(f"result must be a FitResult, got {type(result).__name__}")
    settings = dataclasses.asdict(result.settings)
    settings["widths"] = list(settings["widths"])
    settings["mlp_hidden"] = list(settings["mlp_hidden"])
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in result.state_dict.items()},
        "mean": torch.from_numpy(np.asarray(result.mean, np.float32).copy()),
        "std": torch.from_numpy(np.asarray(result.std, np.float32).copy()),
        "best_epoch": int(result.best_epoch),
        "best_val_accuracy": float(result.best_val_accuracy),
        "num_classes": int(result.num_classes),
        "in_channels": int(result.in_channels),
        "input_ndim": int(result.input_ndim),
        "settings": settings,
        # Plain ints/floats only: numpy scalars are rejected by the weights_only unpickler.
        "history": [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in result.history],
    }
    return save_torch(payload, path)


def load_attributor(path: str | os.PathLike) -> FitResult:
    """Read an attributor written by :func:`save_attributor` (tensors land on the CPU)."""
    path = Path(path)
    payload = load_tagged(path, "attributor file", FORMAT, FORMAT_VERSION,
                          fix="delete it, train the attributor again and save it",
                          missing_fix="train an attributor and save it with save_attributor")
    missing = [k for k in _KEYS if k not in payload]
    if missing:
        raise InputError(f"attributor file {path} lacks fields {missing}; it is truncated or corrupt")
    settings = dict(payload["settings"])
    settings["widths"] = tuple(settings["widths"])
    settings["mlp_hidden"] = tuple(settings["mlp_hidden"])
    settings.setdefault("precision", "fp32")  # files written before the setting existed were trained in fp32 on CPU
    settings.setdefault("schedule", "constant")  # and with a constant learning rate
    return FitResult(
        state_dict=payload["state_dict"],
        mean=payload["mean"].numpy(),
        std=payload["std"].numpy(),
        best_epoch=payload["best_epoch"],
        best_val_accuracy=payload["best_val_accuracy"],
        num_classes=payload["num_classes"],
        in_channels=payload["in_channels"],
        settings=FitSettings(**settings),
        history=list(payload["history"]),
        input_ndim=payload["input_ndim"],
    )
