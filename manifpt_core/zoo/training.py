"""The parts every zoo family shares: input checks, the step loop, latent sampling, pixels.

Families write only their networks and one optimisation step; this module
(with :class:`~manifpt_core.zoo.registry.Family`, which calls it) makes every
family deterministic on the CPU in the same way and report progress in the
same way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import batch_indices, make_generator
from manifpt_core.zoo.cards import ModelCard

logger = logging.getLogger(__name__)

SUPPORTED_SIZES = (28, 32)
SUPPORTED_CHANNELS = (1, 3)
# Losses are read back (a device sync) and checked only this often.
LOG_EVERY = 50
# Latents are drawn in fixed blocks so a seed gives the same images whatever n and batch_size.
_NOISE_BLOCK = 4096


def check_image_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Return ``(C, H, W)`` as ints, or raise InputError if the zoo networks cannot make that size."""
    try:
        c, h, w = (int(s) for s in shape)
    except (TypeError, ValueError) as err:
        raise InputError(f"image shape must be (C, H, W), got {shape!r}") from err
    if c not in SUPPORTED_CHANNELS or h != w or h not in SUPPORTED_SIZES:
        raise InputError(
            f"the zoo supports images of {' or '.join(map(str, SUPPORTED_CHANNELS))} channels and "
            f"H = W in {SUPPORTED_SIZES}, got (C, H, W) = {(c, h, w)}; resize or pad the images"
        )
    return c, h, w


def check_images(images: np.ndarray) -> tuple[int, int, int]:
    """Check a training set is uint8 (N, C, H, W) with N >= 1; return ``(C, H, W)``."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        if isinstance(images, np.ndarray):
            got = f"{images.dtype} array of shape {images.shape}"
        else:
            got = type(images).__name__
        raise InputError(f"training images must be a uint8 array of shape (N, C, H, W), got {got}")
    if images.shape[0] == 0:
        raise InputError("the training set is empty; give at least one image")
    return check_image_shape(images.shape[1:])


def images_to_tensor(images: np.ndarray, device: str, low: float, high: float) -> torch.Tensor:
    """uint8 images as a float tensor on ``device`` with pixel values mapped from [0, 255] to [low, high]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device=device, dtype=torch.float32)
    return x.mul_((high - low) / 255.0).add_(low)


def to_uint8(x01: torch.Tensor) -> np.ndarray:
    """Images in [0, 1] as uint8: round(clip(x * 255))."""
    return x01.mul(255.0).clamp_(0.0, 255.0).round_().to(torch.uint8).cpu().numpy()


def run_steps(
    step: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    data: torch.Tensor,
    card: ModelCard,
    progress: bool,
) -> None:
    """Call ``step(batch)`` for ``card.train.steps`` batches of ``data``, with a progress bar and logs.

    ``step`` returns its losses as 0-d tensors. A non-finite loss raises
    InputError, since the usual cause is a learning rate too high for the data.
    """
    settings = card.train
    shuffle = make_generator(card.seed)
    batches = batch_indices(data.shape[0], settings.batch_size, settings.steps, shuffle)
    started = time.perf_counter()
    logger.info(
        "training %s (%s): %d steps of %d images from %d", card.name, card.family,
        settings.steps, settings.batch_size, data.shape[0],
    )
    losses: dict[str, float] = {}
    with tqdm(total=settings.steps, desc=f"train {card.name}", unit="step", disable=not progress) as bar:
        for i, idx in enumerate(batches, start=1):
            out = step(data[idx.to(data.device)])
            if i % LOG_EVERY == 0 or i == settings.steps:
                losses = {k: float(v.detach()) for k, v in out.items()}
                bad = [k for k, v in losses.items() if not math.isfinite(v)]
                if bad:
                    raise InputError(
                        f"training {card.name} diverged at step {i}: {', '.join(bad)} is not finite; "
                        f"lower train.lr (now {settings.lr})"
                    )
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                logger.debug("%s step %d/%d %s", card.name, i, settings.steps, losses)
            bar.update(1)
    logger.info("trained %s in %.1f s; final losses %s", card.name, time.perf_counter() - started, losses)


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state dict on the CPU, detached from training: what ``train`` returns."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def load_state(
    module: nn.Module, state: Mapping[str, torch.Tensor], card: ModelCard, shape: tuple, device: str
) -> nn.Module:
    """Load ``state`` into ``module`` strictly and return it on ``device`` in eval mode, ready to sample.

    A mismatch becomes an InputError that says why.
    """
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        raise InputError(
            f"the state does not fit model {card.name!r} (family {card.family}, latent_dim "
            f"{card.train.latent_dim}, width {card.train.width}) at image shape {tuple(shape)}; was it "
            f"trained with another card or image size? ({err})"
        ) from err
    return module.to(device).eval()


def sample_from_latents(
    decode: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    latent_dim: int,
    image_shape: tuple[int, int, int],
    seed: int,
    device: str,
    batch_size: int,
) -> np.ndarray:
    """Decode ``n`` latents z ~ N(0, I) into uint8 images; ``decode`` maps z to images in [0, 1].

    The latents are drawn on the CPU, so a seed gives the same latents on
    every device and for every ``n`` (a smaller ``n`` gives a prefix).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"number of samples must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InputError(f"sampling seed must be an integer in [0, 2**63), got {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"sampling batch_size must be an integer >= 1, got {batch_size!r}")
    out = np.empty((n, *image_shape), dtype=np.uint8)
    noise = make_generator(seed)
    with torch.inference_mode():
        for start in range(0, n, _NOISE_BLOCK):
            block = torch.randn(_NOISE_BLOCK, latent_dim, generator=noise)[: n - start]
            for off in range(0, block.shape[0], batch_size):
                z = block[off : off + batch_size].to(device)
                x = decode(z)
                out[start + off : start + off + z.shape[0]] = to_uint8(x)
    return out
