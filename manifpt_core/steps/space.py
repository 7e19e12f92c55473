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
from typing import Any

import numpy as np

from manifpt_core.attribution import resolve_device
from manifpt_core.config import Settings
from manifpt_core.encoders import Encoder, build_encoder, load_encoder, save_encoder
from manifpt_core.encoders.weights import require_weights_file
from manifpt_core.spaces import Space, get_space
from manifpt_core.steps.cache import Outcome, require_record, run_cached
from manifpt_core.store import Store, open_array, read_manifest
from manifpt_core.store.hashing import file_hash, text_hash

SPACE_VERSION = "1"
CARD_FILE = "card.json"
ENCODER_FILE = "encoder.pt"


def _reference_labels(store: Store, n_reference: int) -> np.ndarray | None:
    """Class labels of the reference rows, or None when the source has none (label -1)."""
    table = read_manifest(store.source_manifest("real"), ["row", "label"])
    labels = np.asarray(table.column("label").to_pylist(), dtype=np.int64)[:n_reference]
    return None if (labels < 0).any() else labels


def materialize_space(store: Store, settings: Settings, space_name: str) -> Outcome:
    """Write ``spaces/<space>/card.json`` (and ``encoder.pt`` for a learned space)."""
    space = get_space(space_name)
    if not space.learned:
        def compute_fixed(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
            card = {"space": space.settings(), "encoder": None, "fingerprint": fp}
            tmp.mkdir(parents=True)
            (tmp / CARD_FILE).write_text(json.dumps(card, indent=2))
            return text_hash(json.dumps(space.settings(), sort_keys=True)), card

        return run_cached(store.space(space_name), "space", SPACE_VERSION, {}, space.settings(), compute_fixed)

    encoder_settings = settings.encoders.for_space(space_name)
    if encoder_settings.weights:
        key = f"encoders.{space_name}.weights"
        inputs = {"weights": file_hash(require_weights_file(encoder_settings.weights, key,
                                                            "to train an encoder on the real images"))}
    else:
        inputs = {"real_images": require_record(store.images("real"), "the real images (ingestion)")["content_hash"]}

    def compute_learned(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
        n_reference = require_record(store.images("real"), "the real images")["summary"]["n_reference"]
        images = labels = None
        if not encoder_settings.weights:
            images = np.asarray(open_array(store.images("real"))[:n_reference])
            labels = _reference_labels(store, n_reference)
        encoder = build_encoder(space_name, encoder_settings, images, labels, seed=settings.data_seed,
                                device=resolve_device(settings.device))
        tmp.mkdir(parents=True)
        save_encoder(encoder, tmp / ENCODER_FILE)
        content_hash = file_hash(tmp / ENCODER_FILE)
        card = {"space": space.settings(), "encoder": encoder.card, "encoder_file": ENCODER_FILE,
                "encoder_sha256": content_hash, "feature_dim": encoder.feature_dim, "fingerprint": fp}
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2))
        return content_hash, card

    return run_cached(store.space(space_name), "space", SPACE_VERSION, inputs,
                      {"space": space.settings(), "encoder": encoder_settings.settings()}, compute_learned)


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
    require_record(store.space(space_name), f"the embedding space {space_name!r}")
    encoder = load_encoder(store.space(space_name) / ENCODER_FILE) if space.learned else None
    return Embedder(space, encoder, device)
