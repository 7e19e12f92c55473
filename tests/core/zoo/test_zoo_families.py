"""What sets each newer zoo family apart: its loss, its maths, its defaults.

The checks every family shares (training, sampling, determinism,
checkpoints, factor validation) are in test_zoo.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from manifpt_core.errors import InputError
from manifpt_core.zoo import (
    ModelCard,
    TrainSettings,
    ddpm,
    get_family,
    realnvp,
    wgan_gp,
)
from manifpt_core.zoo.dcgan import DCGAN

FAST = TrainSettings(steps=3, batch_size=16, lr=1e-3, latent_dim=8, width=8)


def _images(n: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)


# --- lsgan -----------------------------------------------------------------


def test_lsgan_is_dcgan_with_the_least_squares_loss():
    lsgan, dcgan = get_family("lsgan"), get_family("dcgan")
    assert isinstance(lsgan, DCGAN)
    assert lsgan.default_factors == {**dcgan.default_factors, "loss": "least_squares"}
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])
    assert lsgan.discriminator_loss(real, fake).item() == pytest.approx(0.5 * (2.0 + 2.0))
    assert lsgan.generator_loss(fake).item() == pytest.approx(0.5 * 1.0)
    states = [
        fam.train(_images(), ModelCard(name="x", family=fam.name, train=FAST), progress=False)
        for fam in (lsgan, dcgan)
    ]
    assert states[0].keys() == states[1].keys()  # the same generator ...
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])  # ... trained otherwise


# --- wgan_gp ---------------------------------------------------------------


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[0.6, 0.0, 0.8, 0.0]]))  # gradient norm 1 everywhere
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    noise = torch.Generator().manual_seed(0)
    assert wgan_gp.gradient_penalty(critic, real, fake, noise).item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        critic[1].weight.mul_(3.0)  # gradient norm 3: penalty (3 - 1)^2
    assert wgan_gp.gradient_penalty(critic, real, fake, noise).item() == pytest.approx(4.0)


def test_wgan_gp_generator_upsamples_by_nearest_neighbour():
    gen = wgan_gp.Generator(latent_dim=8, width=8, channels=1, size=28)
    ups = [m for m in gen.modules() if isinstance(m, nn.Upsample)]
    assert len(ups) == 2 and all(m.mode == "nearest" and m.scale_factor == 2 for m in ups)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in gen.modules())
    assert gen(torch.randn(3, 8)).shape == (3, 1, 28, 28)


# --- beta_vae --------------------------------------------------------------


def test_beta_vae_defaults_to_beta_4_and_the_beta_elbo():
    card = ModelCard.from_dict({"name": "b", "family": "beta_vae"})
    assert card.train.beta == 4.0 and card.factor("loss") == "beta_elbo"
    with pytest.raises(InputError, match="beta"):
        ModelCard.from_dict({"name": "b", "family": "beta_vae", "factors": {"loss": "elbo"}})


# --- realnvp ---------------------------------------------------------------


def _random_flow(channels: int, dtype: torch.dtype = torch.float32) -> realnvp.Flow:
    torch.manual_seed(0)
    flow = realnvp.Flow(channels, width=4).to(dtype)
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, 0.1)  # away from the identity init
    return flow


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_flow_inverts(shape):
    flow = _random_flow(shape[0])
    x = torch.randn(2, *shape)
    z, _ = flow(x)
    assert z.shape == (2, 16 * shape[0], shape[1] // 4, shape[2] // 4)
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-4, rtol=0)


def test_flow_log_det_is_the_log_det_of_its_jacobian():
    flow = _random_flow(1, torch.float64)
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, 1, 4, 4))[0].flatten(), x.flatten())
    assert flow(x)[1].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-8)


def test_untrained_flow_scores_uniform_noise_near_8_bits():
    flow = realnvp.Flow(1, width=4)  # the identity map: a standard normal in logit space
    pixels = torch.randint(0, 256, (64, 1, 28, 28)).float()
    bpd = realnvp.bits_per_dim(flow, pixels, torch.Generator().manual_seed(0)).item()
    assert 7.0 < bpd < 10.0 and math.isfinite(bpd)


# --- ddpm ------------------------------------------------------------------


def test_unet_keeps_the_image_shape():
    for shape in [(1, 28, 28), (3, 32, 32)]:
        net = ddpm.UNet(shape[0], width=8)
        assert net(torch.randn(2, *shape), torch.tensor([0, 999])).shape == (2, *shape)


def test_ddim_with_the_exact_noise_recovers_a_single_data_point():
    target = torch.rand(1, 1, 28, 28) * 2 - 1
    abar = ddpm.alpha_bars().float()

    def oracle(x, t):
        # For data that is one point, the noise in x_t is known exactly.
        a = abar[t][:, None, None, None]
        return (x - a.sqrt() * target) / (1 - a).sqrt()

    out = ddpm.ddim_sample(oracle, torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(out, target.expand(3, -1, -1, -1), atol=1e-4, rtol=0)


def test_ddpm_schedule_decreases_from_almost_1_to_almost_0():
    abar = ddpm.alpha_bars()
    assert abar.shape == (ddpm.T,) and bool((abar[1:] < abar[:-1]).all())
    assert abar[0] > 0.999 and abar[-1] < 1e-3
