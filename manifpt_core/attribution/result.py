"""The attributor's settings (FitSettings) and a trained attributor (FitResult)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from manifpt_core.attribution.networks import SmallResNet
from manifpt_core.errors import InputError


@dataclass(frozen=True)
class FitSettings:
    """Hyper-parameters of :func:`fit_attributor`; invalid values raise InputError."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3  # epochs without a better validation accuracy before stopping
    widths: tuple[int, ...] = (16, 32, 64)
    blocks_per_stage: int = 1

    def __post_init__(self) -> None:
        # Values are coerced to plain int/float/tuple (numpy scalars from configs are fine) so
        # settings stay hashable and serialize under torch.load(weights_only=True).
        for name in ("epochs", "batch_size", "patience", "blocks_per_stage"):
            object.__setattr__(self, name, _positive_int(f"FitSettings.{name}", getattr(self, name)))
        for name, allow_zero in (("lr", False), ("weight_decay", True)):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (value == 0 and not allow_zero):
                kind = "non-negative" if allow_zero else "positive"
                raise InputError(f"FitSettings.{name} must be a {kind} finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.widths, (tuple, list)) or not self.widths:
            raise InputError(f"FitSettings.widths must be a non-empty tuple of positive ints, got {self.widths!r}")
        widths = tuple(_positive_int(f"FitSettings.widths[{i}]", w) for i, w in enumerate(self.widths))
        object.__setattr__(self, "widths", widths)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}")
    return int(value)


@dataclass
class FitResult:
    """A trained attributor: weights of the best validation epoch plus what is needed to use them.

    ``mean`` and ``std`` (float32, one per channel, from the training set only) standardize
    inputs. ``history`` holds one dict per epoch run: epoch (1-based), train_loss,
    train_accuracy, val_accuracy.
    """

    state_dict: dict[str, torch.Tensor]
    mean: np.ndarray
    std: np.ndarray
    best_epoch: int
    best_val_accuracy: float
    num_classes: int
    in_channels: int
    settings: FitSettings
    history: list[dict[str, float]] = field(default_factory=list)

    def build_network(self) -> SmallResNet:
        """A SmallResNet with this result's architecture and best weights, in eval mode on CPU."""
        net = SmallResNet(self.in_channels, self.num_classes, self.settings.widths, self.settings.blocks_per_stage)
        net.load_state_dict(self.state_dict)
        return net.eval()
