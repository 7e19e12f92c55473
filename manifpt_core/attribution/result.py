"""The attributor's settings (FitSettings) and a trained attributor (FitResult)."""

from __future__ import annotations

import math
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
        for name in ("epochs", "batch_size", "patience", "blocks_per_stage"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"FitSettings.{name} must be a positive int, got {value!r}")
        for name, minimum in (("lr", "positive"), ("weight_decay", "non-negative")):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (minimum == "positive" and value == 0):
                raise InputError(f"FitSettings.{name} must be a {minimum} finite number, got {value!r}")
        widths = self.widths
        if (
            not isinstance(widths, (tuple, list))
            or not widths
            or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths)
        ):
            raise InputError(f"FitSettings.widths must be a non-empty tuple of positive ints, got {widths!r}")
        # Frozen dataclass: normalize a list to a tuple so settings stay hashable.
        object.__setattr__(self, "widths", tuple(widths))


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
