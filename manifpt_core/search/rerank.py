"""Exact re-ranking of candidate neighbours, from difference vectors.

Every engine ranks candidates with ``|q|^2 + |r|^2 - 2 q.r`` in float32 (or an
approximation of it), which can swap near-ties; so a few more candidates than
asked are fetched, their exact squared distances are computed from ``q - r``
(float64 here on the CPU; the CUDA engine computes them in float32 on the GPU),
and ``select`` keeps the nearest, ties to the smaller row. The CPU path is numpy,
a few hundred queries at a time: several times faster than the same passes in
torch, whose threaded kernels on large float64 temporaries stall when the cores
are shared with other work.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Queries re-ranked at a time: their (rows, D) float64 differences stay in cache, twice as fast as whole blocks.
RERANK_ROWS = 256

_LAST_ROW = np.iinfo(np.int64).max


def squared_distances(queries: np.ndarray, cand: np.ndarray, rows: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """float64 ``|q - r|^2`` (n, m) for candidate rows ``cand`` (n, m), -1 read as row 0; ``rows(ids)`` gives rows."""
    squared = np.empty(cand.shape, dtype=np.float64)
    for start in range(0, len(queries), RERANK_ROWS):
        part = slice(start, start + RERANK_ROWS)
        q = queries[part].astype(np.float64)
        for j in range(cand.shape[1]):
            diff = q - rows(np.maximum(cand[part, j], 0))
            squared[part, j] = np.einsum("nd,nd->n", diff, diff)
    return squared


def select(cand: np.ndarray, squared: np.ndarray, k: int,
           exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest candidates by exact squared distance: ``(ids int64 (n, k), dist float32 (n, k))``.

    A candidate -1 (none found) or equal to ``exclude[i]`` is skipped; a query left
    with fewer than ``k`` gets id -1 at distance inf in the missing places.
    """
    valid = cand >= 0
    if exclude is not None:
        valid &= cand != exclude[:, None]
    squared = np.where(valid, squared, np.inf)
    # lexsort: primary key the exact distance, secondary key the row number (ties to the smaller row)
    order = np.lexsort((np.where(valid, cand, _LAST_ROW), squared), axis=1)[:, :k]
    ids = np.take_along_axis(np.where(valid, cand, -1), order, axis=1).astype(np.int64, copy=False)
    return ids, np.sqrt(np.take_along_axis(squared, order, axis=1)).astype(np.float32)

