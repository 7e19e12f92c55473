"""DCGAN (Radford et al., 2016) sized for 28x28 and 32x32 images.

Generator: latent -> linear -> (2*width, H/4, W/4) -> two stride-2 transposed
convolutions with batch norm and ReLU -> tanh. Discriminator: two stride-2
convolutions with leaky ReLU -> linear logit. Trained with the non-saturating
GAN loss; the loss is two methods of the family, so a subclass with the same
networks and another GAN loss (e.g. :mod:`manifpt_core.zoo.lsgan`) overrides
only those. :class:`GAN` is what every GAN family of the zoo shares (the
generator as the sampled network, batch norm); WGAN-GP builds on it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from manifpt_core.zoo.cards import TrainSettings, design
from manifpt_core.zoo.registry import Family, Step, TrainingRun, register_family


def _init_weights(module: nn.Module) -> None:
    # The DCGAN paper's N(0, 0.02) init; PyTorch's default makes early training much less stable.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """Latent (B, latent_dim) -> images (B, C, H, W) in [-1, 1].

    A linear projection to (2*width, H/4, W/4) with batch norm and ReLU, then
    :meth:`upsampling` to the image; a subclass with another upsampling (e.g.
    WGAN-GP's) overrides only that.
    """

    def __init__(self, latent_dim: int, width: int, channels: int, size: int) -> None:
        super().__init__()
        self.base = (2 * width, size // 4, size // 4)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, int(np.prod(self.base)), bias=False),
            nn.BatchNorm1d(int(np.prod(self.base))),
            nn.ReLU(inplace=True),
        )
        self.upsample = self.upsampling(width, channels)

    @staticmethod
    def upsampling(width: int, channels: int) -> nn.Sequential:
        """(2*width, H/4, W/4) -> tanh images (channels, H, W): two stride-2 transposed convolutions."""
        return nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(-1, *self.base))


class Discriminator(nn.Module):
    """Images (B, C, H, W) in [-1, 1] -> real/fake logits (B,).

    Two stride-2 convolutions with leaky ReLU, ``norm(channels)`` after the
    second, then a linear logit. With batch norm (the default) the second
    convolution has no bias, the norm's shift standing in for it; ``bias``
    gives it one for a norm without that shift's role (e.g. WGAN-GP's critic).
    """

    def __init__(
        self, width: int, channels: int, size: int,
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d, bias: bool = False,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=bias),
            norm(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
            nn.Linear(2 * width * (size // 4) ** 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class GAN(Family):
    """A GAN family: a generator of latents -> images in [-1, 1], with batch norm, trained against a
    discriminator or critic; a subclass writes the training step."""

    # Batch norm needs two images to normalise over.
    min_batch_size = 2
    # The generator class: constructed as generator(latent_dim, width, channels, size).
    generator: ClassVar[type[nn.Module]] = Generator

    def network(self, settings: TrainSettings, channels: int, size: int) -> nn.Module:
        """The generator."""
        return self.generator(settings.latent_dim, settings.width, channels, size)

    def decode(self, net: nn.Module, z: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
        """The generator's images, from [-1, 1] to [0, 1]."""
        return (net(z) + 1.0) / 2.0


@register_family
class DCGAN(GAN):
    """Deep convolutional GAN with the non-saturating loss."""

    name = "dcgan"
    default_factors = design("transposed_conv", "relu", "batch", "strided_conv", "none", "non_saturating")
    # The demo setting: about 60 s on 2 idle CPU cores for 10,000 28x28 grayscale images.
    default_train = TrainSettings(steps=2500, batch_size=64, lr=2e-4, latent_dim=64, width=32)

    def training_step(self, run: TrainingRun) -> tuple[Step, nn.Module]:
        """Generator and discriminator with DCGAN's init and Adam; a step updates the discriminator, then the
        generator, on the same fakes."""
        s, noise, device = run.settings, run.noise, run.device
        gen = self.network(s, run.channels, run.size)
        disc = Discriminator(s.width, run.channels, run.size)
        gen.apply(_init_weights)
        disc.apply(_init_weights)
        gen.to(device).train()
        disc.to(device).train()
        opt_g = torch.optim.Adam(gen.parameters(), lr=s.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(disc.parameters(), lr=s.lr, betas=(0.5, 0.999))

        def step(real: torch.Tensor) -> dict[str, torch.Tensor]:
            z = torch.randn(real.shape[0], s.latent_dim, generator=noise, device=device)
            fake = gen(z)
            loss_d = self.discriminator_loss(disc(real), disc(fake.detach()))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = self.generator_loss(disc(fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

        return step, gen

    def discriminator_loss(self, logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss given its outputs (B,) on real and on generated images."""
        return F.binary_cross_entropy_with_logits(
            logit_real, torch.ones_like(logit_real)
        ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))

    def generator_loss(self, logit_gen: torch.Tensor) -> torch.Tensor:
        """The generator's loss given the discriminator's outputs (B,) on generated images."""
        # Non-saturating: G maximises log D(G(z)) rather than minimising log(1 - D(G(z))).
        return F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
