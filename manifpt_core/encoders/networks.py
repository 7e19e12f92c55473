"""The encoder networks: a small ResNet trained here, and torchvision's ResNet-50 for given weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import BasicBlock

ARCHS = ("small_resnet", "resnet50")
RESNET50_DIM = 2048


class EncoderNet(nn.Module):
    """A CIFAR-style ResNet trunk: images (N, C, H, W) -> features (N, feature_dim).

    A stride-2 3x3 stem, one BasicBlock a stage (``widths``; stages after the
    first halve the image), then, as in ResNet-50's last bottleneck, a 1x1
    convolution that widens to ``feature_dim`` before global average pooling.
    The stride-2 stem keeps a training step on 128 images of 28x28 near 0.1 s on
    two CPU cores; at full resolution the first stage alone costs ~5x more.
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (32, 64, 128), feature_dim: int = 256) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.in_channels, self.widths, self.feature_dim = int(in_channels), widths, int(feature_dim)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks, channels = [], widths[0]
        for index, width in enumerate(widths):
            blocks.append(BasicBlock(channels, width, stride=1 if index == 0 else 2))
            channels = width
        self.stages = nn.Sequential(*blocks)
        self.widen = nn.Sequential(
            nn.Conv2d(channels, feature_dim, 1, bias=False),
            nn.BatchNorm2d(feature_dim),
            nn.ReLU(inplace=True),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Each block starts as the identity, which steadies the first of few hundred steps.
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-safe: ``EncoderNet(**net.config())`` rebuilds the architecture."""
        return {"in_channels": self.in_channels, "widths": list(self.widths), "feature_dim": self.feature_dim}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.widen(self.stages(self.stem(x)))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


class Projector(nn.Sequential):
    """The Barlow Twins projector: (Linear, BatchNorm, ReLU) x 2, then Linear; used in training only."""

    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__(
            nn.Linear(in_dim, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, width, bias=False),
        )


def resnet50_trunk() -> nn.Module:
    """torchvision's ResNet-50 with random weights (nothing is downloaded) and ``fc`` replaced by Identity."""
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Identity()
    return net


def network_from_config(arch: str, config: dict[str, Any]) -> nn.Module:
    """An untrained network of ``arch`` with constructor arguments ``config`` (as the encoder card records)."""
    if arch == "small_resnet":
        return EncoderNet(**config)
    if arch == "resnet50":
        return resnet50_trunk()
    raise InputError(f"unknown encoder architecture {arch!r}; valid: {', '.join(ARCHS)}")
