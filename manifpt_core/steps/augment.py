"""Training-time augmentation of the attributors (``attributor.augment = "perturb"``).

A seeded half of every class's training samples is replaced by a post-processed copy of its image (one
perturbation each, drawn uniformly from :mod:`manifpt_core.perturb`), and for an artifact attributor by that
copy's artifacts, computed exactly as a query's: embedded with the stored encoder and searched in the stored
index. The control gets the perturbed image itself. Validation and test inputs are never augmented.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from manifpt_core.artifacts import artifacts_of_block
from manifpt_core.config import Settings
from manifpt_core.names import Method
from manifpt_core.perturb import random_perturbation
from manifpt_core.spaces import get_space
from manifpt_core.steps.index import open_searcher
from manifpt_core.steps.space import open_space
from manifpt_core.store import Store
from manifpt_core.store.hashing import array_bytes_hash
from manifpt_core.store.records import ArtifactsSummary

logger = logging.getLogger(__name__)

AUGMENTED_SHARE = 0.5  # of every class's training samples


def method_inputs(method: Method, images: np.ndarray, arrays: dict[str, dict[str, np.ndarray]],
                  shape: tuple[int, int, int]) -> np.ndarray:
    """A method's input for uint8 ``images`` as the attributor step feeds it: the control's images in [0, 1], or
    the artifacts of the method's kind from ``arrays`` (per space, what :func:`artifacts_of_block` returns),
    image-shaped (n, C, H, W) in a pixel-like space."""
    if method.is_control:
        return images.astype(np.float32) / np.float32(255.0)
    x = arrays[method.space][ArtifactsSummary.ARRAYS[method.kind]]
    return x.reshape((len(x), *shape)) if get_space(method.space).image_shaped else x


@dataclass
class SharedQueries:
    """Query work that several methods of one step read, done once: the uint8 training images of a class list,
    the perturbed copies of its augmented rows, and the last image batch's per-space arrays (embedded, searched,
    artifacts of every kind). An attributor and its k-NN variant share a space, so the second reads the first's
    arrays. Only the last class list and the last batch of one space are kept, so the memory held stays one
    batch's whatever the number of spaces and methods."""

    images: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    perturbed: dict[tuple, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # the last (rows, images)
    key: tuple | None = None
    blocks: list[dict[str, dict[str, np.ndarray]]] | None = None
    computed: int = 0  # how many batches were embedded and searched (the rest were read back)


def _space_blocks(store: Store, settings: Settings, space: str, images: np.ndarray, device: str
                  ) -> list[dict[str, dict[str, np.ndarray]]]:
    """Per block of ``settings.block_rows`` images: ``{space: artifacts of every configured kind}``."""
    embedder, searcher = open_space(store, space, device), open_searcher(store, settings, space)
    a = settings.artifacts
    blocks = []
    for start in range(0, len(images), settings.block_rows):
        vectors = np.ascontiguousarray(embedder.embed(images[start : start + settings.block_rows]), dtype=np.float32)
        blocks.append({space: artifacts_of_block(searcher, vectors, a.kinds, a.knn_k, a.knn_reg)})
    return blocks


def query_inputs(store: Store, settings: Settings, method: Method, images: np.ndarray, device: str,
                 shared: SharedQueries | None = None) -> np.ndarray:
    """A method's input for uint8 images (n, C, H, W), computed as a query's (``QueryEngine.compute``): embedded
    with the stored encoder, searched in the stored index, artifacts of every configured kind, in blocks of
    ``settings.block_rows``. With ``shared``, the same images in the same space are embedded and searched once."""
    shape = tuple(int(s) for s in images.shape[1:])
    if method.is_control:
        return method_inputs(method, images, {}, shape)
    key = (method.space, array_bytes_hash(images)) if shared is not None else None
    if shared is not None and shared.key == key:
        blocks = shared.blocks
    else:
        blocks = _space_blocks(store, settings, method.space, images, device)
        if shared is not None:
            shared.key, shared.blocks, shared.computed = key, blocks, shared.computed + 1
    step = settings.block_rows
    return np.concatenate([method_inputs(method, images[i * step : (i + 1) * step], arrays, shape)
                           for i, arrays in enumerate(blocks)])


def augmented_rows(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted rows of a seeded AUGMENTED_SHARE (rounded down) of every class's rows."""
    chosen = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        chosen.append(rng.choice(rows, size=int(len(rows) * AUGMENTED_SHARE), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def augmented_training_inputs(store: Store, settings: Settings, method: Method, x_train: np.ndarray,
                              y_train: np.ndarray, images: np.ndarray, device: str,
                              shared: SharedQueries | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``x_train`` with the rows of :func:`augmented_rows` replaced by the inputs of a perturbed copy of their
    image (``images``: the uint8 training images, row for row). Seeded by ``settings.data_seed``, so every method
    augments the same samples with the same perturbations (``shared``: see :class:`SharedQueries`). Returns (the
    new inputs, the replaced rows)."""
    if len(images) != len(x_train) or len(y_train) != len(x_train):
        raise ValueError(f"{len(x_train)} training inputs but {len(images)} images and {len(y_train)} labels")
    key = (settings.data_seed, array_bytes_hash(y_train), array_bytes_hash(images)) if shared is not None else None
    if shared is not None and key in shared.perturbed:
        rows, perturbed = shared.perturbed[key]
    else:
        rng = np.random.default_rng(settings.data_seed)
        rows = augmented_rows(y_train, rng)
        perturbed = random_perturbation(images[rows], rng)
        if shared is not None:
            shared.perturbed = {key: (rows, perturbed)}
    x = np.array(x_train, copy=True)
    x[rows] = query_inputs(store, settings, method, perturbed, device, shared)
    logger.info("augmentation of %s: %d of %d training inputs from perturbed images", method, len(rows), len(x))
    return x, rows
