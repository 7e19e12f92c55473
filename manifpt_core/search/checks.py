"""Boundary checks for search inputs: FAISS and torch read raw memory, so shapes and dtypes are checked first."""

from __future__ import annotations

import numpy as np

from manifpt_core.errors import InputError


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


def check_exclude(exclude: np.ndarray | None, n_queries: int, ntotal: int) -> np.ndarray | None:
    """``exclude`` as int64 (n,): one reference row (or -1 for none) per query, never to be returned."""
    if exclude is None:
        return None
    exclude = np.asarray(exclude)
    if exclude.shape != (n_queries,) or not np.issubdtype(exclude.dtype, np.integer):
        raise InputError(f"exclude must hold one integer row per query, shape ({n_queries},); "
                         f"got {exclude.dtype} of shape {exclude.shape}")
    if ntotal < 2:
        raise InputError(f"excluding a query's own row needs at least 2 reference rows; the index has {ntotal}")
    if exclude.size and (exclude.min() < -1 or exclude.max() >= ntotal):
        raise InputError(f"exclude holds rows outside -1..{ntotal - 1} (min {exclude.min()}, max {exclude.max()})")
    return exclude.astype(np.int64, copy=False)


def check_k(k: int, ntotal: int, excluding: bool) -> int:
    """``k`` neighbours must exist: at most the reference rows, one fewer when a row is excluded."""
    available = ntotal - int(excluding)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= available:
        why = " (one row a query is excluded)" if excluding else ""
        raise InputError(f"k = {k!r} neighbours asked, but only 1..{available} are available{why}")
    return int(k)
