"""Step 2a, the embedding space: what turns an image into a vector, stored as a card (and an encoder).

Every space gets ``spaces/<space>/card.json``: its settings and preprocessing.
A learned space (``sl``, ``ssl``) also gets ``encoder.pt``: ResNet-50 loaded
from the local weights file named by ``encoders.<space>.weights``, or, with no
such file, an encoder trained on the real reference images. The card records
which encoder and which weights (by hash) made the space, and its content hash
enters the fingerprint of every embedding made in it, so a new encoder
recomputes exactly the embeddings, indexes and artifacts of that space.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from manifpt_core.config import Settings
from manifpt_core.encoders import Encoder, build_encoder, load_encoder, save_encoder
from manifpt_core.encoders.weights import require_weights_file
from manifpt_core.spaces import Space, get_space
from manifpt_core.store import Outcome, Store, run_cached
from manifpt_core.store.hashing import file_hash, text_hash
from manifpt_core.store.layout import CARD_FILE, ENCODER_FILE
from manifpt_core.store.records import SpaceSummary
from manifpt_core.torch_helpers import resolve_device

SPACE_VERSION = "1"


def materialize_space(store: Store, settings: Settings, space_name: str) -> Outcome[SpaceSummary]:
    """Write ``spaces/<space>/card.json`` (and ``encoder.pt`` for a learned space)."""
    space = get_space(space_name)
    if not space.learned:
        def compute_fixed(tmp: Path, fp: str) -> tuple[str, SpaceSummary]:
            card = SpaceSummary(space=space.settings(), encoder=None, fingerprint=fp)
            tmp.mkdir(parents=True)
            (tmp / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2))
            return text_hash(json.dumps(space.settings(), sort_keys=True)), card

        return run_cached(store.paths.space(space_name), "space", SPACE_VERSION, {}, space.settings(), compute_fixed,
                          SpaceSummary)

    encoder_settings = settings.encoders.for_space(space_name)
    if encoder_settings.weights:
        key = f"encoders.{space_name}.weights"
        inputs = {"weights": file_hash(require_weights_file(encoder_settings.weights, key,
                                                            "to train an encoder on the real images"))}
    else:
        inputs = {"real_images": store.real.record.content_hash}

    def compute_learned(tmp: Path, fp: str) -> tuple[str, SpaceSummary]:
        images = labels = None
        if not encoder_settings.weights:
            images, labels = store.real.reference_images(), store.real.reference_labels()
        encoder = build_encoder(space_name, encoder_settings, images, labels, seed=settings.data_seed,
                                device=resolve_device(settings.device))
        tmp.mkdir(parents=True)
        save_encoder(encoder, tmp / ENCODER_FILE)
        content_hash = file_hash(tmp / ENCODER_FILE)
        card = SpaceSummary(space=space.settings(), encoder=encoder.card, encoder_file=ENCODER_FILE,
                            encoder_sha256=content_hash, feature_dim=encoder.feature_dim, fingerprint=fp)
        (tmp / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2))
        return content_hash, card

    return run_cached(store.paths.space(space_name), "space", SPACE_VERSION, inputs,
                      {"space": space.settings(), "encoder": encoder_settings.settings()}, compute_learned,
                      SpaceSummary)


@dataclass
class Embedder:
    """A materialized space, ready to embed uint8 images (N, C, H, W) into float32 vectors (N, D)."""

    space: Space
    encoder: Encoder | None
    device: str
    batch_size: int = 256

    def embed(self, images: np.ndarray) -> np.ndarray:
        if self.encoder is None:
            return self.space.embed(images)
        return self.encoder.embed(images, device=self.device, batch_size=self.batch_size)

    def dim(self, image_shape: tuple[int, int, int]) -> int:
        return self.encoder.feature_dim if self.encoder is not None else self.space.dim(image_shape)


def open_space(store: Store, space_name: str, device: str = "cpu") -> Embedder:
    """The stored space (its encoder loaded on ``device``)."""
    space = get_space(space_name)
    store.space(space_name)  # a clear error when the space was never materialized
    encoder = load_encoder(store.paths.encoder(space_name)) if space.learned else None
    return Embedder(space, encoder, device)
