"""An encoder of a learned space: network + preprocessing + card; building, embedding, saving, loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from manifpt_core.encoders.networks import RESNET50_DIM, network_from_config
from manifpt_core.encoders.preprocess import Preprocess, check_images
from manifpt_core.encoders.settings import RESNET50_SIZE, SPACES, EncoderSettings
from manifpt_core.encoders.training import train_encoder
from manifpt_core.encoders.weights import IMAGENET_MEAN, IMAGENET_STD, load_resnet50
from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import autocast_for, load_tagged, save_torch, seeded

FORMAT = "manifpt-encoder"
FORMAT_VERSION = 1
KINDS = {"sl": "supervised", "ssl": "barlow_twins"}


@dataclass(eq=False)
class Encoder:
    """The encoder of space ``space``: ``network`` maps ``preprocess.apply(images)`` to (N, D) features.

    ``card`` (JSON-safe) says how it was made: space, kind, origin ("trained" or
    "weights"), arch, feature_dim, preprocess settings, and either the weights
    file (name, sha256) or the training record (settings, loss history, seconds).
    """

    space: str
    network: nn.Module
    preprocess: Preprocess
    card: dict[str, Any]

    def __post_init__(self) -> None:
        self.network.eval()

    @property
    def feature_dim(self) -> int:
        """D, the length of an embedding."""
        return int(self.card["feature_dim"])

    def _check_size(self, images: np.ndarray) -> None:
        # An encoder trained at native size would run on other sizes (it pools globally),
        # but its features there mean something else; a size mismatch is a mistake upstream.
        trained = (self.card.get("training") or {}).get("input_shape")
        if trained and self.preprocess.size is None and list(images.shape[2:]) != trained[1:]:
            raise InputError(
                f"the {self.space} encoder was trained on {trained[1]}x{trained[2]} images, got "
                f"{images.shape[2]}x{images.shape[3]}; give images of the trained size or retrain the "
                f"encoder with encoders.{self.space}.image_size set"
            )

    def embed(self, images: np.ndarray, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
        """float32 (N, D) features of uint8 images (N, C, H, W), ``batch_size`` images at a time.

        Runs in inference mode, with bf16 autocast on CUDA (the output is float32
        either way). The network is moved to ``device``.
        """
        check_images(images)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self._check_size(images)
        network = self.network.to(device).eval()
        parts = []
        with torch.inference_mode(), autocast_for(str(device)):
            for start in range(0, len(images), batch_size):
                parts.append(network(self.preprocess.apply(images[start : start + batch_size], device)).float())
            # One copy back per call: a copy per batch would wait for the GPU after every batch.
            out = torch.cat(parts).cpu().numpy() if parts else np.empty((0, self.feature_dim), np.float32)
        return out


def build_encoder(space: str, settings: EncoderSettings, images: np.ndarray | None, labels: np.ndarray | None,
                  seed: int = 0, device: str = "cpu", progress: bool = True) -> Encoder:
    """The encoder of ``space`` (``"sl"`` or ``"ssl"``) as ``settings`` say.

    With ``settings.weights``: ResNet-50 loaded from that local file (images and
    labels are not used). Without: an encoder trained on ``images`` (uint8
    (N, C, H, W), the real reference images), on ``labels`` for ``sl`` (which
    then needs them), with Barlow Twins for ``ssl`` (labels ignored); seeded by
    ``seed`` and deterministic on the CPU. The caller's torch RNG is left as it was.
    """
    if space not in SPACES:
        raise InputError(f"unknown learned space {space!r}; valid spaces: {', '.join(SPACES)}")
    if not isinstance(settings, EncoderSettings):
        raise InputError(f"settings must be an EncoderSettings, got {type(settings).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise InputError(f"encoder seed must be an integer in [0, 2**63), got {seed!r}")
    card: dict[str, Any] = {"space": space, "kind": KINDS[space]}
    if settings.weights is not None:
        # Building the network draws its (discarded) initial weights from the global RNG.
        with seeded(int(seed), "cpu"):
            network, weights = load_resnet50(settings.weights, f"encoders.{space}.weights")
        preprocess = Preprocess(size=settings.image_size or RESNET50_SIZE, filter=settings.resize_filter,
                                channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        card |= {"origin": "weights", "arch": "resnet50", "network": {}, "feature_dim": RESNET50_DIM,
                 "weights": weights, "training": None}
    else:
        network, preprocess, record = train_encoder(space, images, labels, settings, int(seed), device, progress)
        card |= {"origin": "trained", "arch": "small_resnet", "network": network.config(),
                 "feature_dim": network.feature_dim, "weights": None, "training": record}
    card["preprocess"] = preprocess.settings()
    return Encoder(space, network, preprocess, card)


def save_encoder(encoder: Encoder, path: Path) -> None:
    """Write ``encoder`` to ``path`` as one torch file, atomically (with ``torch_helpers.save_torch``).

    Only tensors and plain values are stored, so :func:`load_encoder` reads it with
    ``torch.load(weights_only=True)``.
    """
    if not isinstance(encoder, Encoder):
        raise InputError(f"encoder must be an Encoder, got {type(encoder).__name__}")
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "space": encoder.space,
        "card": encoder.card,
        "state_dict": {k: v.detach().cpu() for k, v in encoder.network.state_dict().items()},
    }
    save_torch(payload, path)


def load_encoder(path: Path) -> Encoder:
    """Read an encoder written by :func:`save_encoder` (its network on the CPU, in eval mode)."""
    path = Path(path)
    payload = load_tagged(path, "encoder file", FORMAT, FORMAT_VERSION,
                          fix="delete it and build the embedding space again",
                          missing_fix="build the embedding space again")
    card = payload["card"]
    # Building the network draws its (overwritten) initial weights from the global RNG.
    with seeded(0, "cpu"):
        network = network_from_config(card["arch"], card["network"])
    try:
        network.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise InputError(f"the weights in {path} do not fit its {card['arch']} card; the file is corrupt: "
                         f"{err}") from err
    return Encoder(payload["space"], network, Preprocess.from_settings(card["preprocess"]), card)
