"""The attributor networks: a small CIFAR-style ResNet for image-shaped artifacts, an MLP for vectors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from manifpt_core.torch_helpers import BasicBlock


class SmallResNet(nn.Module):
    """A ResNet for small images (CIFAR-style), used to attribute artifacts to generators.

    Args:
        in_channels: channels of the input artifacts.
        num_classes: number of generative models to tell apart.
        widths: channels of each stage; stages after the first start with stride 2.
        blocks_per_stage: BasicBlocks in each stage.

    Works for any input height and width of at least 8 (global average pooling
    makes the head independent of the spatial size).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 1,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if in_channels < 1 or num_classes < 1 or blocks_per_stage < 1:
            raise ValueError(
                f"in_channels, num_classes and blocks_per_stage must be >= 1, got "
                f"{in_channels}, {num_classes}, {blocks_per_stage}"
            )
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        channels = widths[0]
        for index, width in enumerate(widths):
            blocks = []
            for block_index in range(blocks_per_stage):
                stride = 2 if index > 0 and block_index == 0 else 1
                blocks.append(BasicBlock(channels, width, stride))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(channels, num_classes)
        self.feature_dim = channels
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Zero the last BN of each block so every block starts as the identity: this
        # makes the early epochs of short trainings noticeably more stable.
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: globally average-pooled output of the last stage, (N, D)."""
        if x.ndim != 4 or x.shape[-1] < 8 or x.shape[-2] < 8:
            raise ValueError(f"expected a (N, C, H, W) batch with H, W >= 8, got shape {tuple(x.shape)}")
        out = self.stages(self.stem(x))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the generative models, (N, num_classes)."""
        return self.head(self.features(x))


class MLP(nn.Module):
    """A multi-layer perceptron for vector artifacts (the learned spaces' 2048- or 256-d features).

    Linear -> BatchNorm -> ReLU per hidden layer, dropout before the head; the
    last hidden layer is the feature layer (``features``), as the ResNet's pooled
    output is for image-shaped artifacts.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (512, 256), dropout: float = 0.1) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if in_features < 1 or num_classes < 1 or not hidden or min(hidden) < 1:
            raise ValueError(f"in_features, num_classes and hidden widths must be >= 1, got "
                             f"{in_features}, {num_classes}, {hidden}")
        layers: list[nn.Module] = []
        width = in_features
        for out in hidden:
            layers += [nn.Linear(width, out, bias=False), nn.BatchNorm1d(out), nn.ReLU(inplace=True)]
            width = out
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)
        self.feature_dim = width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations, (N, feature_dim)."""
        if x.ndim != 2:
            raise ValueError(f"expected a (N, D) batch of vectors, got shape {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the classes, (N, num_classes)."""
        return self.head(self.dropout(self.features(x)))


class ResNet50Attributor(nn.Module):
    """torchvision's ResNet-50 as an attributor (the paper's choice for large images), optionally initialised
    from a local weights file; a first convolution for other channel counts keeps the pretrained filters
    averaged over their RGB channels."""

    def __init__(self, in_channels: int, num_classes: int, weights: str | None = None) -> None:
        super().__init__()
        # The encoders build the same trunk.
        from manifpt_core.encoders.networks import resnet50_trunk
        from manifpt_core.encoders.weights import load_resnet50

        trunk = (load_resnet50(weights, "attributor.weights", "to train the attributor from scratch")[0]
                 if weights is not None else resnet50_trunk())
        if in_channels != 3:
            conv = trunk.conv1
            trunk.conv1 = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                    bias=False)
            with torch.no_grad():
                trunk.conv1.weight.copy_(conv.weight.mean(dim=1, keepdim=True).expand_as(trunk.conv1.weight))
        self.trunk = trunk
        self.head = nn.Linear(2048, num_classes)
        self.feature_dim = 2048

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 2048-d pooled features, (N, 2048)."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
