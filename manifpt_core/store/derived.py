"""Arrays derived on read: the (n, D) arrays of a pixel-like space computed from the images when they are read.

In ``rgb`` and ``freq`` a vector is a fixed function of one image, so an embedding is the space applied to the
stored image, and an artifact is fully determined by the query's image, its neighbours' images (``nn_id``, or
``knn_ids`` with the projection weights ``knn_coef``) and the space. Above ``derive_above_gb`` the embedding and
artifact steps store only what determines them, and these views compute them when read, with the steps' own
arithmetic row by row, so the values are the same bits as stored ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from manifpt_core.errors import InputError
from manifpt_core.projection import apply_weights
from manifpt_core.spaces import get_space

# Query rows derived at a time: bounds the (rows, k, D) neighbour vectors read for the knn kind.
DERIVE_ROWS = 1024
# What a derived store keeps of each kind, besides nn_dist / knn_dist and query_row.
DERIVED_FROM = {"nearest": ("nn_id",), "knn": ("knn_ids", "knn_coef")}

Vectors = Callable[[np.ndarray], np.ndarray]


def derive_artifacts(kind: str, queries: np.ndarray, vectors: Vectors, stored: dict[str, np.ndarray]) -> np.ndarray:
    """The artifacts of one kind (n, D) from the query vectors, the reference rows (``vectors(ids)``) and what a
    derived store keeps (``stored``): the arithmetic of ``manifpt_core.artifacts``, row by row, so the same bits."""
    if kind == "nearest":
        return queries - vectors(stored["nn_id"])
    if kind == "knn":
        return queries - apply_weights(vectors(stored["knn_ids"]), stored["knn_coef"])
    raise InputError(f"unknown artifact kind {kind!r}; kinds: {sorted(DERIVED_FROM)}")


def read_rows(array: Any, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for any int rows (unsorted, repeated), reading each needed chunk once."""
    rows = np.asarray(rows, dtype=np.int64)
    unique, inverse = np.unique(rows.reshape(-1), return_inverse=True)
    values = np.asarray(array.get_orthogonal_selection((unique,) + (slice(None),) * (array.ndim - 1)))
    return values[inverse].reshape(rows.shape + values.shape[1:])


def _split_key(key: Any) -> tuple[Any, Any]:
    return (key + (slice(None),))[:2] if isinstance(key, tuple) else (key, slice(None))


class _DerivedRows:
    """What both views share: a read-only (N, D) float32 array whose ``__getitem__`` computes the rows asked."""

    dtype = np.dtype(np.float32)
    ndim = 2
    shape: tuple[int, int]

    def __getitem__(self, key: Any) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[:]
        return values if dtype is None else values.astype(dtype)


class DerivedEmbeddings(_DerivedRows):
    """A read-only (N, D) float32 array of a pixel-like space's embeddings: ``space.embed(images[rows])``.

    Indexable like the stored Zarr array (ints, slices, row arrays, ``get_orthogonal_selection``); ``chunks``
    are the image store's.
    """

    def __init__(self, images: Any, space_name: str, dim: int) -> None:
        self.images, self.space = images, get_space(space_name)
        if self.space.learned:
            raise InputError(f"{space_name!r} is a learned space: its embeddings are always stored")
        self.shape = (int(images.shape[0]), int(dim))
        self.chunks = (int(images.chunks[0]), int(dim))

    def __getitem__(self, key: Any) -> np.ndarray:
        rows_key, cols = _split_key(key)
        if isinstance(rows_key, (int, np.integer)):
            return self[np.array([rows_key])][0][cols]
        if isinstance(rows_key, slice) and rows_key.step in (None, 1):
            start, stop, _ = rows_key.indices(self.shape[0])
            parts = [self.space.embed(np.asarray(self.images[s : min(s + DERIVE_ROWS, stop)]))
                     for s in range(start, stop, DERIVE_ROWS)]
            values = np.concatenate(parts) if parts else np.empty((0, self.shape[1]), np.float32)
            return values[:, cols]
        rows = np.arange(self.shape[0])[rows_key]
        parts = [self.space.embed(read_rows(self.images, rows[s : s + DERIVE_ROWS]))
                 for s in range(0, len(rows), DERIVE_ROWS)]
        values = np.concatenate(parts) if parts else np.empty((0, self.shape[1]), np.float32)
        return values[:, cols]

    def get_orthogonal_selection(self, selection: tuple[Any, Any]) -> np.ndarray:
        rows, cols = selection
        return self[rows][:, cols]


class DerivedArtifacts(_DerivedRows):
    """A read-only (n, D) float32 array of one kind of artifact, computed on read from the images.

    Indexable like the stored array: ``a[i]``, ``a[i:j]``, ``a[[rows]]``, ``a[i:j, :]``; also a source for
    ``dask.array.from_array``.
    """

    def __init__(self, artifacts: Any, kind: str) -> None:  # a store.dataset.Artifacts view
        space = get_space(artifacts.space)
        if space.learned:
            raise InputError(f"{artifacts.space!r} is a learned space: its artifacts are always stored")
        self.artifacts, self.kind, self.space = artifacts, kind, space
        summary = artifacts.record.summary
        self.shape = (summary.n_queries, summary.dim)

    def __getitem__(self, key: Any) -> np.ndarray:
        rows_key, cols = _split_key(key)
        scalar = isinstance(rows_key, (int, np.integer))
        rows = np.arange(self.shape[0])[rows_key]
        values = self.rows(np.atleast_1d(rows))
        values = values[0] if scalar else values
        return values[..., cols]

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The artifacts of query rows ``rows`` (positions in the artifact arrays), float32 (len(rows), D)."""
        parts = [self._block(rows[s : s + DERIVE_ROWS]) for s in range(0, len(rows), DERIVE_ROWS)]
        return np.concatenate(parts) if parts else np.empty((0, self.shape[1]), np.float32)

    def _block(self, rows: np.ndarray) -> np.ndarray:
        a = self.artifacts
        source, real = a.source, a.source.store.real
        image_rows = read_rows(a.array("query_row"), rows)
        queries = self.space.embed(read_rows(source.images(), image_rows))
        stored = {name: read_rows(a.array(name), rows) for name in DERIVED_FROM[self.kind]}
        reference = real.images()

        def vectors(ids: np.ndarray) -> np.ndarray:
            flat = self.space.embed(read_rows(reference, ids.reshape(-1)))
            return flat.reshape(*ids.shape, flat.shape[-1])

        return derive_artifacts(self.kind, queries, vectors, stored)


__all__ = ["DERIVED_FROM", "DERIVE_ROWS", "DerivedArtifacts", "DerivedEmbeddings", "derive_artifacts", "read_rows"]
