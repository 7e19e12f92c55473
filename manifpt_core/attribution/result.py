"""The attributor's settings (FitSettings) and a trained attributor (FitResult)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from manifpt_core.attribution.networks import MLP, ResNet50Attributor, SmallResNet
from manifpt_core.errors import InputError
from manifpt_core.settings_loader import positive, setting
from manifpt_core.torch_helpers import PRECISIONS

NETWORKS = ("small_resnet", "resnet50")
AUGMENTS = ("none", "perturb")  # attributor.augment: see FitSettings
SCHEDULES = ("constant", "onecycle")  # attributor.schedule: see FitSettings


@dataclass(frozen=True)
class FitSettings:
    """Hyper-parameters of :func:`fit_attributor`; invalid values raise InputError."""

    epochs: int = positive(10)
    batch_size: int = positive(128)
    lr: float = positive(1e-3)
    weight_decay: float = setting(1e-4, ge=0)
    patience: int = positive(3)  # epochs without a better validation accuracy before stopping
    widths: tuple[int, ...] = positive((16, 32, 64))  # ResNet stages, for image-shaped artifacts
    blocks_per_stage: int = positive(1)
    mlp_hidden: tuple[int, ...] = positive((512, 256))  # MLP hidden layers, for vector artifacts
    network: str = "small_resnet"  # image-shaped artifacts: "small_resnet" or "resnet50" (torchvision)
    weights: str | None = None  # resnet50 only: a local weights file to start from
    # Artifact attributors: "perturb" replaces half the training samples' artifacts by those of a randomly
    # post-processed copy of the image (JPEG, resize, blur or noise), recomputed against the stored index.
    augment: str = "none"
    # "auto": bf16 autocast on CUDA and on CPUs with native bf16 (AVX-512 BF16 / AMX), fp32 elsewhere; a trained
    # attributor stores the precision it was trained in, and predicts in it.
    precision: str = "auto"
    # The learning rate over the epochs: "constant" (``lr`` throughout), or "onecycle" (warm up to ``lr`` over the
    # first 30% of the ``epochs`` budget, then anneal to near zero by its end: converges in fewer epochs).
    schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise InputError(f"attributor.network = {self.network!r} is not one of {NETWORKS}")
        if self.augment not in AUGMENTS:
            raise InputError(f"attributor.augment = {self.augment!r} is not one of {AUGMENTS}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"attributor.schedule = {self.schedule!r} is not one of {SCHEDULES}")
        if self.precision not in PRECISIONS:
            raise InputError(f"attributor.precision = {self.precision!r} is not one of {PRECISIONS}")
        if self.weights is not None and self.network != "resnet50":
            raise InputError("attributor.weights initialises a ResNet-50: set attributor.network = 'resnet50'")
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
        for name in ("widths", "mlp_hidden"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or not value:
                raise InputError(f"FitSettings.{name} must be a non-empty tuple of positive ints, got {value!r}")
            object.__setattr__(self, name, tuple(_positive_int(f"FitSettings.{name}[{i}]", w) for i, w in enumerate(value)))


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
    input_ndim: int = 4  # 4: images (N, C, H, W) and a SmallResNet; 2: vectors (N, D) and an MLP

    def build_network(self) -> nn.Module:
        """The network of this result's architecture with its best weights, in eval mode on CPU."""
        net = build_network(self.settings, self.in_channels, self.num_classes, self.input_ndim, initialise=False)
        net.load_state_dict(self.state_dict)
        return net.eval()


def build_network(settings: FitSettings, in_channels: int, num_classes: int, input_ndim: int,
                  initialise: bool = True) -> nn.Module:
    """For image-shaped inputs (``input_ndim`` 4) a SmallResNet or ResNet-50 (``settings.network``; with
    ``initialise``, from ``settings.weights`` when set), for vectors (2) an MLP."""
    if input_ndim == 4 and settings.network == "resnet50":
        return ResNet50Attributor(in_channels, num_classes, settings.weights if initialise else None)
    if input_ndim == 4:
        return SmallResNet(in_channels, num_classes, settings.widths, settings.blocks_per_stage)
    return MLP(in_channels, num_classes, settings.mlp_hidden)
