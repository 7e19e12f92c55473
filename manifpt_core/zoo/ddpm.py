"""DDPM (Ho et al., 2020) with a small U-Net, sampled by DDIM (Song et al., 2021); 28x28 and 32x32.

The U-Net predicts the noise in x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
for t < T = 1000 under the linear beta schedule 1e-4 .. 0.02. Down path: a
residual block, a stride-2 3x3 convolution, another residual block, another
stride-2 convolution; up path: nearest-neighbour x2 upsampling + 3x3
convolution, concatenation with the down path's features at that size (the
U-Net skips), a residual block. Residual blocks use group norm and SiLU and
add a projection of the sinusoidal time embedding. Training minimises the
mean squared error of the predicted noise; the returned weights are an
exponential moving average (EMA) of the trained ones, which gives cleaner
samples after short training.

Sampling runs the deterministic DDIM sampler (eta = 0) for
:data:`SAMPLE_STEPS` = 25 steps from x_T ~ N(0, I), clipping the predicted
x_0 to the pixel range at every step, so the images depend only on the
initial noise, i.e. on the seed. ``train.latent_dim`` is unused: the noise
has C*H*W dims.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from manifpt_core.zoo.cards import TrainSettings, design
from manifpt_core.zoo.registry import Family, Step, TrainingRun, register_family

# Diffusion steps of the forward process and its linear beta schedule (Ho et al.).
T = 1000
BETA_START, BETA_END = 1e-4, 0.02
# DDIM steps at sampling time: 2000 28x28 images take about 35 s on 2 idle CPU cores at width 16.
SAMPLE_STEPS = 25
# EMA decay of the returned weights; it warms up as (1 + i) / (10 + i) so short runs are not all init.
EMA_DECAY = 0.995


def alpha_bars() -> torch.Tensor:
    """abar_t = prod_{s <= t} (1 - beta_s) for t = 0 .. T-1, float64 on the CPU for an exact schedule."""
    betas = torch.linspace(BETA_START, BETA_END, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer timesteps (B,), as in the Transformer and DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    # Up to 8 groups, and always a divisor of the channel count so any width works.
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with group norm and SiLU, the time embedding added in between, plus a skip."""

    def __init__(self, c_in: int, c_out: int, t_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.time = nn.Linear(t_dim, c_out)
        self.conv2 = nn.Sequential(_norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.time(t_emb)[:, :, None, None]
        return self.skip(x) + self.conv2(h)


class UNet(nn.Module):
    """(x_t (B, C, H, W), t (B,)) -> predicted noise (B, C, H, W); two down and two up levels."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        w, t_dim = width, 4 * width
        self.t_dim = t_dim
        self.time = nn.Sequential(nn.Linear(t_dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.inp = nn.Conv2d(channels, w, 3, padding=1)
        self.down1 = ResBlock(w, w, t_dim)
        self.pool1 = nn.Conv2d(w, w, 3, stride=2, padding=1)
        self.down2 = ResBlock(w, 2 * w, t_dim)
        self.pool2 = nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1)
        self.mid = ResBlock(2 * w, 2 * w, t_dim)
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * w, 2 * w, 3, padding=1))
        self.dec2 = ResBlock(4 * w, 2 * w, t_dim)
        self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * w, w, 3, padding=1))
        self.dec1 = ResBlock(2 * w, w, t_dim)
        self.out = nn.Sequential(_norm(w), nn.SiLU(), nn.Conv2d(w, channels, 3, padding=1))
        # Zero output: the untrained net predicts no noise, a calm start for the MSE.
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(time_embedding(t, self.t_dim))
        h1 = self.down1(self.inp(x), emb)
        h2 = self.down2(self.pool1(h1), emb)
        h = self.mid(self.pool2(h2), emb)
        h = self.dec2(torch.cat([self.up2(h), h2], dim=1), emb)
        h = self.dec1(torch.cat([self.up1(h), h1], dim=1), emb)
        return self.out(h)


def ddim_sample(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int = SAMPLE_STEPS
) -> torch.Tensor:
    """Run deterministic DDIM from noise x = x_T (B, C, H, W); returns x_0 in [-1, 1].

    ``model(x_t, t)`` predicts the noise in x_t for integer timesteps t (B,).
    """
    abar = alpha_bars().tolist()
    times = torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long().tolist()
    x0 = x
    for i, t in enumerate(times):
        a_t, a_prev = abar[t], abar[times[i + 1]] if i + 1 < len(times) else 1.0
        eps = model(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        x0 = ((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1.0, 1.0)
        # The noise consistent with the clipped x_0, so the next x_t stays on the model's path.
        eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    return x0


@register_family
class DDPM(Family):
    """Denoising diffusion model: small U-Net, epsilon prediction, DDIM sampling."""

    name = "ddpm"
    default_factors = design("nearest_conv", "silu", "group", "strided_conv", "unet", "denoising")
    # The demo setting: about 50 s on 2 idle CPU cores for 10,000 28x28 grayscale images.
    default_train = TrainSettings(steps=800, batch_size=64, lr=2e-3, latent_dim=784, width=16)

    image_latents = True

    def network(self, settings: TrainSettings, channels: int, size: int) -> nn.Module:
        """The noise-predicting U-Net."""
        return UNet(channels, settings.width)

    def training_step(self, run: TrainingRun) -> tuple[Step, nn.Module]:
        """The U-Net with Adam and its EMA copy; a step regresses the noise of randomly noised images."""
        noise, device = run.noise, run.device
        model = self.network(run.settings, run.channels, run.size).to(device).train()
        ema = self.network(run.settings, run.channels, run.size).to(device).eval().requires_grad_(False)
        ema.load_state_dict(model.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=run.settings.lr)
        sqrt_abar = alpha_bars().sqrt().float().to(device)
        sqrt_1m_abar = (1.0 - alpha_bars()).sqrt().float().to(device)
        done = 0

        def step(x0: torch.Tensor) -> dict[str, torch.Tensor]:
            nonlocal done
            t = torch.randint(0, T, (x0.shape[0],), generator=noise, device=device)
            eps = torch.randn(x0.shape, generator=noise, device=device)
            xt = sqrt_abar[t][:, None, None, None] * x0 + sqrt_1m_abar[t][:, None, None, None] * eps
            loss = F.mse_loss(model(xt, t), eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            decay = min(EMA_DECAY, (1 + done) / (10 + done))
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.lerp_(p, 1.0 - decay)
            return {"mse": loss.detach()}

        return step, ema

    def decode(self, net: nn.Module, z: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
        """Denoise the noise images z by DDIM."""
        return (ddim_sample(net, z.view(-1, *image_shape)) + 1.0) / 2.0
