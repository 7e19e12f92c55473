"""Torch helpers shared by the zoo, the attributor and the encoders: devices, seeding, a ResNet block,
channel statistics, and torch files.

A leaf module: it imports nothing of the project but its errors, so every
package that trains or stores a network can use it without importing another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from manifpt_core.errors import InputError

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")
STD_FLOOR = 1e-6  # keeps constant channels (std 0) from dividing by zero
_STATS_CHUNK = 1024  # samples per chunk when computing channel statistics


# --- devices ----------------------------------------------------------------


def resolve_device(name: str) -> str:
    """Map a device setting to a torch device string.

    ``"auto"`` gives ``"cuda"`` when a GPU is available and ``"cpu"`` otherwise;
    ``"cuda"`` without a GPU and any unknown name raise InputError.
    """
    if not isinstance(name, str) or name.strip().lower() not in DEVICE_CHOICES:
        raise InputError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    name = name.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    return name


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), so bf16 autocast is faster than fp32; on
    other CPUs torch emulates it, slower than fp32."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def image_layout(device: str) -> torch.memory_format:
    """The memory format of the attributors' image batches and weights on ``device``: channels-last on CUDA and
    on CPUs with AMX, where it makes convolutions faster; contiguous (NCHW) on other CPUs. On AVX-512 CPUs
    without AMX, the channels-last backward pass of a strided 1x1 convolution (oneDNN's avx512_core kernel, as
    torch 2.14 ships it) writes out of bounds for inputs of few channels and large images, and the process
    dies; NCHW takes other kernels."""
    if str(device).startswith("cuda") or torch.cpu._is_amx_tile_supported():
        return torch.channels_last
    return torch.contiguous_format


def resolve_precision(precision: str, device: str) -> str:
    """``fp32`` or ``bf16`` for a precision setting: ``auto`` is bf16 on CUDA and on a CPU with native bf16
    (:func:`cpu_has_bf16`), fp32 otherwise; ``fp32`` and ``bf16`` are kept as given."""
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if device.startswith("cuda") or cpu_has_bf16() else "fp32"


def autocast_for(device: str, precision: str | None = None) -> contextlib.AbstractContextManager:
    """bf16 autocast where ``precision`` (see :func:`resolve_precision`) resolves to bf16, a no-op for fp32.
    Without ``precision``: bf16 on CUDA (faster, no loss scaling needed), fp32 on CPU (what the encoders and
    the zoo train and embed with)."""
    cuda = device.startswith("cuda")
    resolved = ("bf16" if cuda else "fp32") if precision is None else resolve_precision(precision, device)
    if resolved == "bf16":
        return torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- random numbers -----------------------------------------------------------


@contextlib.contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch's global RNG for the block and restore the caller's RNG state afterwards.

    Module initialisation draws from the global RNG; forking keeps training
    from changing the random stream of whoever called it.
    """
    dev = torch.device(device)
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def make_generator(seed: int, device: str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def batch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` index batches drawn without replacement from successive shuffles of ``range(n)``.

    A batch larger than the data set spans several shuffles.
    """
    pool = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while pool.numel() < batch_size:
            pool = torch.cat([pool, torch.randperm(n, generator=generator)])
        yield pool[:batch_size]
        pool = pool[batch_size:]


# --- networks and statistics ----------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with a residual connection (He et al., 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        # bias=False: the following BatchNorm has its own shift, a conv bias would be redundant.
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            # Projection shortcut so the residual sum has matching shapes.
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def per_channel(values: np.ndarray | torch.Tensor, ndim: int) -> np.ndarray | torch.Tensor:
    """Per-channel values shaped to broadcast over a batch of ``ndim`` dims (images 4, vectors 2)."""
    return values.reshape(1, -1, 1, 1) if ndim == 4 else values.reshape(1, -1)


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (images (N, C, H, W)) or per-feature (vectors (N, D)) mean and std as float32, std floored at 1e-6.

    Computed chunk by chunk in float64 (merging chunk moments with Chan's formula) so
    that no float64 copy of the whole array is ever made.
    """
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    count, mean, m2 = 0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for start in range(0, len(x), _STATS_CHUNK):
        chunk = x[start : start + _STATS_CHUNK].astype(np.float64)
        n_b = chunk.size // x.shape[1]
        mean_b = chunk.mean(axis=axes)
        m2_b = ((chunk - per_channel(mean_b, x.ndim)) ** 2).sum(axis=axes)
        delta, total = mean_b - mean, count + n_b
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
    std = np.maximum(np.sqrt(m2 / count), STD_FLOOR)
    return mean.astype(np.float32), std.astype(np.float32)


# --- torch files ------------------------------------------------------------------


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` with ``torch.save`` to ``path`` atomically; return the path written.

    The bytes go to a hidden temporary file beside ``path`` (same filesystem,
    so the final ``os.replace`` is one atomic rename) and are synced to disk
    first: a reader sees the old file or the whole new one. On any error the
    temporary file is removed and ``path`` is left as it was. Missing parent
    directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.debug("saved %s", path)
    return path


def load_torch(
    path: str | os.PathLike,
    what: str,
    *,
    fix: str = "delete it to recompute it",
    missing_fix: str = "run the step that writes it first",
) -> Any:
    """Read a file written by ``torch.save``, onto the CPU, with ``weights_only=True`` (no code is unpickled).

    ``what`` says what the file is (e.g. ``"generator checkpoint"``); errors name
    it and the path. A missing file raises InputError ending in ``missing_fix``;
    a truncated or corrupt file, or one that holds objects other than tensors
    and plain values, raises InputError ending in ``fix``. An OSError while
    reading (e.g. no permission) is not a fault of the file's content and
    propagates as it is.
    """
    path = Path(path)
    if not path.is_file():
        state = "is not a file" if path.exists() else "does not exist"
        raise InputError(f"{what} '{path}' {state}; {missing_fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    # torch.load raises many types for a bad file (EOFError, RuntimeError from the zip reader,
    # UnpicklingError for objects the weights-only unpickler refuses, ...).
    except Exception as err:
        detail = (str(err).strip().splitlines() or [""])[0]
        raise InputError(
            f"{what} '{path}' does not load with torch.load(weights_only=True): it is truncated, corrupt or "
            f"holds objects other than tensors and plain values ({type(err).__name__}: {detail}); {fix}"
        ) from err


def load_tagged(
    path: str | os.PathLike, what: str, tag: str, version: int, *, fix: str, missing_fix: str
) -> dict[str, Any]:
    """:func:`load_torch` of a file whose payload is a dict tagged ``{"format": tag, "version": version}``.

    A file of another format or version raises InputError naming it, what it
    is and ``fix``; the errors of :func:`load_torch` are as there.
    """
    payload = load_torch(path, what, fix=fix, missing_fix=missing_fix)
    if not isinstance(payload, dict) or payload.get("format") != tag:
        raise InputError(f"'{path}' is not a manifpt {what} (no format tag {tag!r}); {fix}")
    if payload.get("version") != version:
        raise InputError(f"'{path}' has {what} format version {payload.get('version')!r}, this manifpt reads "
                         f"version {version}; {fix}")
    return payload
