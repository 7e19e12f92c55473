"""Least-squares GAN (Mao et al., 2017): DCGAN's networks with a least-squares loss.

The discriminator regresses real images to 1 and generated ones to 0; the
generator pulls its images' scores to 1 (the paper's a=0, b=c=1 coding, with
the 1/2 factors). Only the loss differs from :mod:`manifpt_core.zoo.dcgan`,
so this family is a DCGAN subclass that overrides the two loss methods.
"""

from __future__ import annotations

import torch

from manifpt_core.zoo.cards import TrainSettings
from manifpt_core.zoo.dcgan import DCGAN
from manifpt_core.zoo.registry import register_family


@register_family
class LSGAN(DCGAN):
    """DCGAN architecture trained with the least-squares GAN loss."""

    name = "lsgan"
    default_factors = {**DCGAN.default_factors, "loss": "least_squares"}
    # The demo setting, as DCGAN's: about 45 s on 2 idle CPU cores for 10,000 28x28 grayscale images.
    default_train = TrainSettings(steps=2500, batch_size=64, lr=2e-4, latent_dim=64, width=32)

    def discriminator_loss(self, logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
        """Half the mean squared distance of real scores to 1 plus that of generated scores to 0."""
        return 0.5 * ((logit_real - 1.0).square().mean() + logit_fake.square().mean())

    def generator_loss(self, logit_gen: torch.Tensor) -> torch.Tensor:
        """Half the mean squared distance of the generated images' scores to 1."""
        return 0.5 * (logit_gen - 1.0).square().mean()
