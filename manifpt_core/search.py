"""Exact nearest-neighbour search over the reference set, streamed in blocks of queries.

FAISS ranks candidates with ``|q|^2 + |r|^2 - 2 q.r`` in float32, which can swap
near-ties; so a few candidates are fetched and re-ranked by their exact
distance, computed directly from the difference vectors.
"""

from __future__ import annotations

import faiss
import numpy as np

DEFAULT_CANDIDATES = 4


def check_matrix(x: np.ndarray, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """Boundary check: a 2-D C-contiguous float32 matrix (of ``dim`` columns if given)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise TypeError(f"{what} must be 2-D (N, D), got shape {x.shape}")
    if x.dtype != np.float32:
        raise TypeError(f"{what} must be float32, got {x.dtype}; convert with .astype(np.float32)")
    if dim is not None and x.shape[1] != dim:
        raise TypeError(f"{what} have dimension {x.shape[1]}, the index has {dim}")
    return np.ascontiguousarray(x)


def build_flat_index(reference: np.ndarray) -> faiss.IndexFlatL2:
    """An exact L2 index over the reference vectors; FAISS ids are reference row numbers."""
    reference = check_matrix(reference, what="reference vectors")
    if len(reference) == 0:
        raise ValueError("cannot index an empty reference set")
    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    return index


def nearest(
    index: faiss.Index,
    reference: np.ndarray,
    queries: np.ndarray,
    exclude: np.ndarray | None = None,
    candidates: int = DEFAULT_CANDIDATES,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the reference row at the smallest exact Euclidean distance, and that distance.

    ``exclude[i]`` (a reference row, or -1) is never returned for query ``i``:
    this is how a reference sample queried against its own set avoids finding
    itself. Ties go to the smaller row number. Returns ``(ids int64 (n,), dist float32 (n,))``.
    """
    queries = check_matrix(queries, index.d, "queries")
    n = len(queries)
    k = min(index.ntotal, candidates + (1 if exclude is not None else 0))
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64)
        if exclude.shape != (n,):
            raise ValueError(f"exclude must have one entry per query ({n}), got shape {exclude.shape}")
        if index.ntotal < 2:
            raise ValueError("excluding a query's own row needs a reference set of at least 2")
    _, cand = index.search(queries, k)
    if exclude is not None:
        cand = np.where(cand == exclude[:, None], -1, cand)
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    exact = np.empty(cand.shape, dtype=np.float64)
    for j in range(k):  # one candidate column at a time keeps memory at one (n, D) difference
        diff = queries.astype(np.float64) - reference[safe[:, j]]
        exact[:, j] = np.einsum("nd,nd->n", diff, diff)
    exact[~valid] = np.inf
    # lexsort: primary key exact distance, secondary key the row number (ties to the smaller row)
    order = np.lexsort((np.where(valid, cand, np.iinfo(np.int64).max), exact), axis=1)
    best = order[:, 0]
    rows = np.arange(n)
    return cand[rows, best].astype(np.int64), np.sqrt(exact[rows, best]).astype(np.float32)
