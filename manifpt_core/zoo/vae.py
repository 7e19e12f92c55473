"""Convolutional VAE (Kingma & Welling, 2014) with a Bernoulli likelihood on [0, 1] pixels.

Encoder: two stride-2 convolutions with ReLU -> linear -> (mu, log variance).
Decoder: linear -> (2*width, H/4, W/4) -> two stride-2 transposed convolutions
-> pixel logits. The loss is the negative ELBO with the KL term weighted by
``train.beta``, so beta = 1 is the plain ELBO and any other beta a beta-VAE.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from manifpt_core.errors import InputError
from manifpt_core.zoo.cards import TrainSettings, design
from manifpt_core.zoo.registry import Family, Step, TrainingRun, register_family


class Encoder(nn.Module):
    """Images (B, C, H, W) in [0, 1] -> posterior mean and log variance, each (B, latent_dim)."""

    def __init__(self, latent_dim: int, width: int, channels: int, size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(2 * width * (size // 4) ** 2, 2 * latent_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """Latent (B, latent_dim) -> pixel logits (B, C, H, W); sigmoid gives the Bernoulli mean."""

    def __init__(self, latent_dim: int, width: int, channels: int, size: int) -> None:
        super().__init__()
        self.base = (2 * width, size // 4, size // 4)
        self.project = nn.Sequential(nn.Linear(latent_dim, int(np.prod(self.base))), nn.ReLU(inplace=True))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(-1, *self.base))


@register_family
class VAE(Family):
    """Convolutional VAE; ``train.beta`` weighs the KL term (loss factor elbo or beta_elbo)."""

    name = "vae"
    default_factors = design("transposed_conv", "relu", "none", "strided_conv", "none", "elbo")
    supported_factors = {"loss": ("elbo", "beta_elbo")}
    # The demo setting: about 40 s on 2 idle CPU cores for 10,000 28x28 grayscale images.
    default_train = TrainSettings(steps=1500, batch_size=128, lr=1e-3, latent_dim=16, width=32)
    pixel_range = (0.0, 1.0)

    def resolve_factors(self, given: Mapping[str, str], train: TrainSettings) -> dict[str, str]:
        """As :meth:`Family.resolve_factors`, with the loss factor following ``train.beta``."""
        loss = "elbo" if train.beta == 1.0 else "beta_elbo"
        wanted = given.get("loss", loss)
        if wanted in self.supported_factors["loss"] and wanted != loss:
            fix = "1.0" if wanted == "elbo" else "a value other than 1.0"
            raise InputError(
                f"a {self.name} card with train.beta={train.beta} has loss={loss}, not {wanted!r}; "
                f"drop 'loss' from the factors or set train.beta to {fix}"
            )
        if wanted not in self.supported_factors["loss"]:
            return super().resolve_factors(given, train)  # raises, naming the losses the family implements
        return super().resolve_factors({**given, "loss": loss}, train)

    def network(self, settings: TrainSettings, channels: int, size: int) -> nn.Module:
        """The decoder."""
        return Decoder(settings.latent_dim, settings.width, channels, size)

    def training_step(self, run: TrainingRun) -> tuple[Step, nn.Module]:
        """Encoder and decoder with one Adam; a step minimises the negative ELBO with the KL term times beta."""
        s, noise, device = run.settings, run.noise, run.device
        enc = Encoder(s.latent_dim, s.width, run.channels, run.size).to(device).train()
        dec = self.network(s, run.channels, run.size).to(device).train()
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=s.lr)

        def step(x: torch.Tensor) -> dict[str, torch.Tensor]:
            mu, logvar = enc(x)
            eps = torch.randn(mu.shape, generator=noise, device=device)
            z = mu + eps * torch.exp(0.5 * logvar)
            # Sums over pixels and latents, means over images: the per-image negative ELBO.
            recon = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / x.shape[0]
            kl = -0.5 * torch.sum(1.0 + logvar - mu.square() - logvar.exp()) / x.shape[0]
            loss = recon + s.beta * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"recon": recon.detach(), "kl": kl.detach()}

        return step, dec

    def decode(self, net: nn.Module, z: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
        """The Bernoulli means: sigmoid of the decoder's logits."""
        return torch.sigmoid(net(z))
