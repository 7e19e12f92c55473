"""WGAN-GP (Gulrajani et al., 2017) sized for 28x28 and 32x32 images.

Generator: latent -> linear -> (2*width, H/4, W/4) -> two nearest-neighbour
x2 upsamplings, each followed by a 3x3 convolution (batch norm and ReLU after
the first) -> tanh. Critic: two stride-2 convolutions with leaky ReLU, layer
norm on the second (the paper's choice: batch norm would break the per-sample
gradient penalty) -> linear score. The critic minimises
``D(fake) - D(real) + 10 * (||grad D(mix)|| - 1)^2`` on random mixes of real
and fake images; the generator minimises ``-D(fake)``.

One training step is one critic update on one batch of real images; every
:data:`N_CRITIC`-th step also updates the generator, so ``train.steps``
counts critic updates and the generator gets ``steps // N_CRITIC`` updates.
The design factors describe the generator (normalization=batch).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from manifpt_core.zoo import dcgan
from manifpt_core.zoo.cards import TrainSettings, design
from manifpt_core.zoo.registry import Step, TrainingRun, register_family

# Critic updates per generator update. The paper's 5 is too slow for a CPU budget; 2 keeps
# the critic ahead of the generator at this scale.
N_CRITIC = 2
# The gradient penalty weight lambda of the paper.
GP_WEIGHT = 10.0
# The paper's Adam betas for WGAN-GP; momentum 0.5 rather than 0 trains faster in few steps.
ADAM_BETAS = (0.5, 0.9)


class Generator(dcgan.Generator):
    """Latent (B, latent_dim) -> images (B, C, H, W) in [-1, 1]: DCGAN's, upsampling by nearest neighbour + conv."""

    @staticmethod
    def upsampling(width: int, channels: int) -> nn.Sequential:
        """(2*width, H/4, W/4) -> tanh images (channels, H, W): twice x2 nearest neighbour and a 3x3 conv."""
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(2 * width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(width, channels, 3, padding=1),
            nn.Tanh(),
        )


def layer_norm(channels: int) -> nn.GroupNorm:
    """Layer norm over (C, H, W) of ``channels`` feature maps, independent of the image size: one group."""
    return nn.GroupNorm(1, channels)


class Critic(dcgan.Discriminator):
    """Images (B, C, H, W) in [-1, 1] -> unbounded scores (B,): DCGAN's discriminator with layer norm."""

    def __init__(self, width: int, channels: int, size: int) -> None:
        super().__init__(width, channels, size, norm=layer_norm, bias=True)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
    """Mean of (||grad_x critic(x)|| - 1)^2 over random points x between paired real and fake images."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=noise, device=real.device)
    mix = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    # create_graph: the penalty is itself differentiated w.r.t. the critic's weights.
    (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()


@register_family
class WGANGP(dcgan.GAN):
    """Wasserstein GAN with gradient penalty; generator upsamples by nearest neighbour + conv."""

    name = "wgan_gp"
    default_factors = design("nearest_conv", "relu", "batch", "strided_conv", "none", "wasserstein_gp")
    # The demo setting: about 60 s on 2 idle CPU cores for 10,000 28x28 grayscale images
    # (steps are critic updates, see the module docstring). lr is 4x the paper's 1e-4: with
    # only ~800 generator updates, trials at 1e-4 and 2e-4 gave blurrier, streakier images.
    default_train = TrainSettings(steps=1600, batch_size=64, lr=4e-4, latent_dim=64, width=32)
    generator = Generator

    def training_step(self, run: TrainingRun) -> tuple[Step, nn.Module]:
        """Generator and critic with Adam; a step updates the critic, every N_CRITIC-th also the generator."""
        s, noise, device = run.settings, run.noise, run.device
        gen = self.network(s, run.channels, run.size).to(device).train()
        critic = Critic(s.width, run.channels, run.size).to(device).train()
        opt_g = torch.optim.Adam(gen.parameters(), lr=s.lr, betas=ADAM_BETAS)
        opt_c = torch.optim.Adam(critic.parameters(), lr=s.lr, betas=ADAM_BETAS)
        counter = itertools.count(1)
        loss_g = torch.zeros((), device=device)

        def step(real: torch.Tensor) -> dict[str, torch.Tensor]:
            nonlocal loss_g
            z = torch.randn(real.shape[0], s.latent_dim, generator=noise, device=device)
            with torch.no_grad():
                fake = gen(z)
            distance = critic(real).mean() - critic(fake).mean()
            penalty = gradient_penalty(critic, real, fake, noise)
            loss_c = -distance + GP_WEIGHT * penalty
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
            if next(counter) % N_CRITIC == 0:
                # Frozen critic: the generator step needs no critic weight gradients.
                critic.requires_grad_(False)
                z = torch.randn(real.shape[0], s.latent_dim, generator=noise, device=device)
                loss_g = -critic(gen(z)).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                critic.requires_grad_(True)
                loss_g = loss_g.detach()
            return {"distance": distance.detach(), "penalty": penalty.detach(), "loss_g": loss_g}

        return step, gen
