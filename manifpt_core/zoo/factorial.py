"""A factorial GAN: one family whose upsampling, loss and generator normalization are set independently by the card.

The other GAN families each fix one combination of design factors, so two of them differ in several factors at
once. This family varies three factors one at a time, so a grid of its cards (the ``factorial`` profile)
separates what each factor does to the fingerprint:

- ``upsampling`` (the generator's two x2 stages): ``transposed_conv`` (4x4, stride 2), ``nearest_conv`` and
  ``bilinear_conv`` (x2 interpolation, then a 3x3 convolution), ``pixel_shuffle`` (a 3x3 convolution to 4x the
  channels, then a sub-pixel shuffle).
- ``loss``: ``non_saturating`` (DCGAN's), ``least_squares`` (LSGAN's), ``hinge`` (D: relu(1 - D(x)) +
  relu(1 + D(G(z))); G: -D(G(z))) and ``wasserstein_gp`` (WGAN-GP: the layer-norm critic, the gradient
  penalty and the critic schedule of :mod:`manifpt_core.zoo.wgan_gp`; ``train.steps`` then counts critic
  updates). The first three train against DCGAN's batch-norm discriminator.
- ``normalization`` (the generator's; the discriminator's is fixed by the loss as above): ``batch`` or
  ``layer``. Layer norm normalises each sample on its own, so it works with every loss and behaves the same
  in training and sampling; instance norm is not offered because it erases each feature map's per-sample mean
  and contrast, which an unconditional generator of this size needs to carry the image's global brightness.

Networks are sized like DCGAN's. A family instance is built for one set of factors
(:meth:`FactorialGAN.configured`); :meth:`FactorialGAN.train` and :meth:`FactorialGAN.sample` build it from
the card, so the registry's plain instance works like any other family's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from manifpt_core.zoo import wgan_gp
from manifpt_core.zoo.cards import ModelCard, TrainSettings, design
from manifpt_core.zoo.dcgan import DCGAN
from manifpt_core.zoo.lsgan import LSGAN
from manifpt_core.zoo.registry import Family, Step, TrainingRun, register_family

UPSAMPLINGS = ("transposed_conv", "nearest_conv", "bilinear_conv", "pixel_shuffle")
LOSSES = ("non_saturating", "least_squares", "hinge", "wasserstein_gp")
NORMALIZATIONS = ("batch", "layer")


def upsampling_block(kind: str, in_channels: int, out_channels: int, bias: bool) -> nn.Sequential:
    """(in_channels, H, W) -> (out_channels, 2H, 2W) by one of :data:`UPSAMPLINGS`."""
    if kind == "transposed_conv":
        return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias))
    if kind in ("nearest_conv", "bilinear_conv"):
        mode = "nearest" if kind == "nearest_conv" else "bilinear"
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode),
                             nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias))
    if kind == "pixel_shuffle":
        return nn.Sequential(nn.Conv2d(in_channels, 4 * out_channels, 3, padding=1, bias=bias), nn.PixelShuffle(2))
    raise ValueError(f"unknown upsampling {kind!r}; valid: {', '.join(UPSAMPLINGS)}")


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """The generator's normalization of ``channels`` feature maps: batch norm, or layer norm over (C, H, W)."""
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "layer":
        return wgan_gp.layer_norm
    raise ValueError(f"unknown normalization {kind!r}; valid: {', '.join(NORMALIZATIONS)}")


class Generator(nn.Module):
    """Latent (B, latent_dim) -> images (B, C, H, W) in [-1, 1].

    A linear projection to (2*width, H/4, W/4), then two x2 ``upsampling`` stages (2*width -> width ->
    channels), ``normalization`` and ReLU after the projection and the first stage, tanh at the end.
    """

    def __init__(self, latent_dim: int, width: int, channels: int, size: int,
                 upsampling: str = "transposed_conv", normalization: str = "batch") -> None:
        super().__init__()
        norm = norm_layer(normalization)
        self.base = (2 * width, size // 4, size // 4)
        self.project = nn.Linear(latent_dim, int(np.prod(self.base)), bias=False)
        self.upsample = nn.Sequential(
            norm(2 * width),
            nn.ReLU(inplace=True),
            upsampling_block(upsampling, 2 * width, width, bias=False),
            norm(width),
            nn.ReLU(inplace=True),
            upsampling_block(upsampling, width, channels, bias=True),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(-1, *self.base))


@register_family
class FactorialGAN(DCGAN):
    """A GAN whose upsampling, loss and generator normalization are the card's factors."""

    name = "gan"
    default_factors = design("transposed_conv", "relu", "batch", "strided_conv", "none", "non_saturating")
    supported_factors = {"upsampling": UPSAMPLINGS, "loss": LOSSES, "normalization": NORMALIZATIONS}
    # DCGAN's demo setting. 1,000 steps on 28x28 grayscale images take 45-75 s of one CPU core, by factors
    # (hinge with bilinear upsampling and layer norm the slowest; WGAN-GP's steps are critic updates).
    default_train = TrainSettings(steps=2500, batch_size=64, lr=2e-4, latent_dim=64, width=32)

    def __init__(self, factors: Mapping[str, str] | None = None) -> None:
        self.factors = {**self.default_factors, **(factors or {})}

    def configured(self, card: ModelCard) -> FactorialGAN:
        """This family built for the card's factors (what :meth:`train` and :meth:`sample` use)."""
        return type(self)(dict(card.factors))

    def train(self, images: np.ndarray, card: ModelCard, device: str = "cpu",
              progress: bool = True) -> dict[str, torch.Tensor]:
        """:meth:`Family.train` with the networks and loss of the card's factors."""
        return Family.train(self.configured(card), images, card, device, progress)

    def sample(self, state: Mapping[str, torch.Tensor], card: ModelCard, image_shape: tuple[int, int, int],
               n: int, seed: int, device: str = "cpu", batch_size: int = 512) -> np.ndarray:
        """:meth:`Family.sample` with the generator of the card's factors."""
        return Family.sample(self.configured(card), state, card, image_shape, n, seed, device, batch_size)

    def network(self, settings: TrainSettings, channels: int, size: int) -> nn.Module:
        """The generator of this instance's upsampling and normalization."""
        return Generator(settings.latent_dim, settings.width, channels, size,
                         self.factors["upsampling"], self.factors["normalization"])

    def training_step(self, run: TrainingRun) -> tuple[Step, nn.Module]:
        """WGAN-GP's critic and schedule for ``wasserstein_gp``; otherwise DCGAN's discriminator and step with
        this instance's loss."""
        if self.factors["loss"] == "wasserstein_gp":
            # WGAN-GP's step builds its generator with self.network: this instance's.
            return wgan_gp.WGANGP.training_step(self, run)  # type: ignore[arg-type]
        return super().training_step(run)

    def discriminator_loss(self, logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss of this instance's ``loss`` (non-saturating, least squares or hinge)."""
        loss = self.factors["loss"]
        if loss == "non_saturating":
            return super().discriminator_loss(logit_real, logit_fake)
        if loss == "least_squares":
            return LSGAN.discriminator_loss(self, logit_real, logit_fake)
        if loss == "hinge":
            return F.relu(1.0 - logit_real).mean() + F.relu(1.0 + logit_fake).mean()
        raise ValueError(f"loss {loss!r} has no discriminator loss here")

    def generator_loss(self, logit_gen: torch.Tensor) -> torch.Tensor:
        """The generator's loss of this instance's ``loss`` (non-saturating, least squares or hinge)."""
        loss = self.factors["loss"]
        if loss == "non_saturating":
            return super().generator_loss(logit_gen)
        if loss == "least_squares":
            return LSGAN.generator_loss(self, logit_gen)
        if loss == "hinge":
            return -logit_gen.mean()
        raise ValueError(f"loss {loss!r} has no generator loss here")
