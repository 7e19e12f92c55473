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
from manifpt_core.zoo.cards import ModelCard, TrainSettings
from manifpt_core.zoo.registry import Family, register_family
from manifpt_core.zoo.training import (
    check_image_shape,
    check_images,
    cpu_state,
    images_to_tensor,
    load_state,
    make_generator,
    run_steps,
    sample_from_latents,
    seeded,
)


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
    default_factors = {
        "upsampling": "transposed_conv",
        "nonlinearity": "relu",
        "normalization": "none",
        "downsampling": "strided_conv",
        "skip": "none",
        "loss": "elbo",
    }
    supported_factors = {"loss": ("elbo", "beta_elbo")}
    # The demo setting: about 40 s on 2 idle CPU cores for 10,000 28x28 grayscale images.
    default_train = TrainSettings(steps=1500, batch_size=128, lr=1e-3, latent_dim=16, width=32)

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

    def train(
        self, images: np.ndarray, card: ModelCard, device: str = "cpu", progress: bool = True
    ) -> dict[str, torch.Tensor]:
        """Train encoder and decoder on the ELBO; return the decoder's state dict on the CPU."""
        c, h, _ = check_images(images)
        s = card.train
        with seeded(card.seed, device):
            enc = Encoder(s.latent_dim, s.width, c, h).to(device).train()
            dec = Decoder(s.latent_dim, s.width, c, h).to(device).train()
            opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=s.lr)
            noise = make_generator(card.seed + 1, device)
            data = images_to_tensor(images, device, 0.0, 1.0)

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

            run_steps(step, data, card, progress)
        return cpu_state(dec)

    def sample(
        self,
        state: Mapping[str, torch.Tensor],
        card: ModelCard,
        image_shape: tuple[int, int, int],
        n: int,
        seed: int,
        device: str = "cpu",
        batch_size: int = 512,
    ) -> np.ndarray:
        """Decode ``n`` latents z ~ N(0, I) to uint8 Bernoulli means (n, C, H, W); same seed, same images."""
        c, h, w = check_image_shape(image_shape)
        dec = Decoder(card.train.latent_dim, card.train.width, c, h)
        load_state(dec, state, card, (c, h, w), device)
        return sample_from_latents(
            lambda z: torch.sigmoid(dec(z)), n, card.train.latent_dim, (c, h, w), seed, device, batch_size
        )
