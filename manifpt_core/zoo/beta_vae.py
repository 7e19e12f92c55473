"""beta-VAE (Higgins et al., 2017): the zoo's VAE with the KL term weighted by beta = 4.

The VAE family already weighs its KL term by ``train.beta`` and derives the
loss factor from it, so this family only changes the default settings: a
card of this family gets beta = 4 (loss factor beta_elbo) unless it sets
``train.beta`` itself.
"""

from __future__ import annotations

from manifpt_core.zoo.cards import TrainSettings
from manifpt_core.zoo.registry import register_family
from manifpt_core.zoo.vae import VAE


@register_family
class BetaVAE(VAE):
    """Convolutional VAE with beta = 4 by default (loss factor beta_elbo)."""

    name = "beta_vae"
    default_factors = {**VAE.default_factors, "loss": "beta_elbo"}
    # The demo setting, VAE's with beta = 4: about 25 s on 2 idle CPU cores for 10,000 28x28 images.
    default_train = TrainSettings(steps=1500, batch_size=128, lr=1e-3, latent_dim=16, width=32, beta=4.0)
