"""RealNVP (Dinh et al., 2017): a normalizing flow of affine coupling layers, sized for 28x28 and 32x32.

Pixels are dequantized with uniform noise, scaled to [ALPHA, 1 - ALPHA] and
logit-transformed; the flow then maps them to a standard normal latent of
the image's dimension, so the log-likelihood is exact and the loss is bits
per dimension. Layout: two checkerboard couplings at full resolution, a
squeeze (2x2 pixels -> 4 channels), two channel couplings, three
checkerboard couplings, another squeeze, two channel couplings and four
checkerboard couplings at a quarter of the resolution. Nothing is factored
out, so every layer sees all dimensions, and most layers work at low
resolution, where they are cheap and shape the whole image. Each coupling's
scale and shift come from a small residual conv net (ReLU, no
normalization); the scale is ``rescale * tanh(raw)`` so it stays bounded.

Samples are drawn at temperature :data:`TEMPERATURE` = 0.8: latents
z ~ N(0, 0.8^2 I), which trades diversity for cleaner images (Kingma &
Dhariwal, 2018). ``train.latent_dim`` is unused: the latent has C*H*W dims.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from manifpt_core.zoo.cards import TrainSettings, design
from manifpt_core.zoo.registry import Family, Step, TrainingRun, register_family

# The logit transform's margin: keeps logit(x) finite at black and white pixels.
ALPHA = 0.05
# Standard deviation of the sampling latents (1.0 would be the model's own distribution).
TEMPERATURE = 0.8
# Residual blocks in each coupling net.
N_BLOCKS = 1
# Gradient norm cap: a safety net against the rare gradient spike that exp(scale) can produce.
MAX_GRAD_NORM = 100.0


class ResBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))), 3x3 convolutions at constant width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class Coupling(nn.Module):
    """An affine coupling layer: one part of the input sets the scale and shift of the other part.

    ``kind`` is ``"checkerboard"`` (the parts are the two colours of a
    pixel checkerboard) or ``"channel"`` (the first and second half of the
    channels); ``parity`` swaps which part is transformed.
    """

    def __init__(self, channels: int, width: int, kind: str, parity: int) -> None:
        super().__init__()
        self.kind, self.parity = kind, parity
        n_in = channels if kind == "checkerboard" else channels // 2
        self.net = nn.Sequential(
            nn.Conv2d(n_in, width, 3, padding=1),
            *(ResBlock(width) for _ in range(N_BLOCKS)),
            nn.ReLU(),
            nn.Conv2d(width, 2 * n_in, 3, padding=1),
        )
        # Zero output: every coupling starts as the identity, so training starts from a plain Gaussian.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.rescale = nn.Parameter(torch.ones(n_in, 1, 1))

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        idx = torch.arange(h, device=x.device)[:, None] + torch.arange(w, device=x.device)[None, :]
        return ((idx + self.parity) % 2).to(x.dtype)  # 1 where the input is kept

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channel kind: (the half that conditions, the half that is transformed)."""
        a, b = x.chunk(2, dim=1)
        return (b, a) if self.parity else (a, b)

    def _merge(self, cond: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        return torch.cat([moved, cond] if self.parity else [cond, moved], dim=1)

    def _scale_shift(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(cond).chunk(2, dim=1)
        return self.rescale * torch.tanh(raw_s), t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data direction -> latent direction; returns (y, log|det dy/dx|) with the log-det per image."""
        if self.kind == "checkerboard":
            keep = self._mask(x)
            s, t = self._scale_shift(x * keep)
            s, t = s * (1 - keep), t * (1 - keep)
            return x * torch.exp(s) + t, s.flatten(1).sum(1)
        cond, moved = self._split(x)
        s, t = self._scale_shift(cond)
        return self._merge(cond, moved * torch.exp(s) + t), s.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Latent direction -> data direction."""
        if self.kind == "checkerboard":
            keep = self._mask(y)
            s, t = self._scale_shift(y * keep)
            return y * keep + (1 - keep) * (y - t) * torch.exp(-s)
        cond, moved = self._split(y)
        s, t = self._scale_shift(cond)
        return self._merge(cond, (moved - t) * torch.exp(-s))


class Squeeze(nn.Module):
    """(B, C, H, W) -> (B, 4C, H/2, W/2), each 2x2 pixel block becoming 4 channels; log-det 0."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, torch.zeros(b, device=x.device)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = y.shape
        return y.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


class Flow(nn.Module):
    """Logit-space images (B, C, H, W) <-> latents (B, 16C, H/4, W/4): couplings at three resolutions."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = [Coupling(c, width, "checkerboard", p) for p in (0, 1)]
        layers += [Squeeze()] + [Coupling(4 * c, width, "channel", p) for p in (0, 1)]
        layers += [Coupling(4 * c, width, "checkerboard", p) for p in (0, 1, 0)]
        layers += [Squeeze()] + [Coupling(16 * c, width, "channel", p) for p in (0, 1)]
        layers += [Coupling(16 * c, width, "checkerboard", p) for p in (0, 1, 0, 1)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the latent and log|det| per image."""
        logdet = torch.zeros(x.shape[0], device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


def bits_per_dim(flow: Flow, pixels: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
    """Mean negative log-likelihood of uint8-valued ``pixels`` (floats in [0, 255]) in bits per dimension.

    Uniform dequantization makes this an upper bound on the discrete model's
    bits per dimension.
    """
    u = torch.rand(pixels.shape, generator=noise, device=pixels.device)
    p = ALPHA + (1 - 2 * ALPHA) * (pixels + u) / 256.0
    x = torch.log(p) - torch.log1p(-p)
    # log|d logit(p) / d y| with y = (pixels + u) / 256 in [0, 1].
    logdet_pre = (math.log(1 - 2 * ALPHA) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
    z, logdet = flow(x)
    dims = z[0].numel()
    log_pz = -0.5 * (z.square().flatten(1).sum(1) + dims * math.log(2 * math.pi))
    log_px = log_pz + logdet + logdet_pre - dims * math.log(256.0)
    return -log_px.mean() / (dims * math.log(2.0))


@register_family
class RealNVP(Family):
    """RealNVP flow: exact likelihood, no up- or downsampling, residual coupling nets."""

    name = "realnvp"
    default_factors = design("none", "relu", "none", "none", "residual", "likelihood")
    # The demo setting: about 55 s on 2 idle CPU cores for 10,000 28x28 grayscale images.
    default_train = TrainSettings(steps=900, batch_size=32, lr=1e-3, latent_dim=784, width=32)

    pixel_range = (0.0, 255.0)
    image_latents = True

    def network(self, settings: TrainSettings, channels: int, size: int) -> nn.Module:
        """The flow."""
        return Flow(channels, settings.width)

    def training_step(self, run: TrainingRun) -> tuple[Step, nn.Module]:
        """The flow with Adam; a step minimises the bits per dimension, with the gradient norm capped."""
        flow = self.network(run.settings, run.channels, run.size).to(run.device).train()
        opt = torch.optim.Adam(flow.parameters(), lr=run.settings.lr)

        def step(pixels: torch.Tensor) -> dict[str, torch.Tensor]:
            loss = bits_per_dim(flow, pixels, run.noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(flow.parameters(), MAX_GRAD_NORM)
            opt.step()
            return {"bpd": loss.detach()}

        return step, flow

    def decode(self, net: nn.Module, z: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
        """Invert latents z ~ N(0, I) scaled to temperature TEMPERATURE, then undo the logit transform."""
        c, h, w = image_shape
        x = net.inverse(TEMPERATURE * z.view(-1, 16 * c, h // 4, w // 4))
        y = (torch.sigmoid(x) - ALPHA) / (1 - 2 * ALPHA)
        # y * 256 lies in pixel value k's dequantization bin [k, k + 1); to_uint8 rounds 255 * (this).
        return (256.0 * y - 0.5) / 255.0
