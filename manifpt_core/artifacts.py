"""Artifacts: a query x minus an estimate x* of its real counterpart on the reference manifold.

Two estimates of x* (the *kinds* of artifact):

- ``nearest``: the nearest reference point (the paper's definition);
- ``knn``: the projection of x onto the affine span of its k nearest reference
  points (``manifpt_core.projection``), a local linear patch of the manifold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from manifpt_core.projection import apply_weights, projection_weights
from manifpt_core.search import Searcher

KINDS = ("nearest", "knn")
PROJECTION_ROWS = 512  # queries projected at a time: bounds the (rows, k, D) float64 neighbour patches

Vectors = Callable[[np.ndarray], np.ndarray]


def artifacts_of_block(
    searcher: Searcher, queries: np.ndarray, kinds: tuple[str, ...] = ("nearest",), knn_k: int = 8, knn_reg: float = 1e-3,
    derived: bool = False,
) -> dict[str, np.ndarray]:
    """The arrays of one block of float32 query vectors (n, D), for each kind asked.

    Always ``nn_id`` (n,) and ``nn_dist`` (n,); ``nearest`` adds ``artifact`` (n, D);
    ``knn`` adds ``knn_ids`` (n, k), ``knn_artifact`` (n, D) and ``knn_dist`` (n,),
    the distance from x to its projection. ``derived``: see :func:`artifacts_from_neighbours`.
    """
    check_kinds(kinds)
    ids, dist = searcher.search(queries, k=knn_k if "knn" in kinds else 1)
    return artifacts_from_neighbours(queries, ids, dist, searcher.vectors, kinds, knn_reg, derived)


def check_kinds(kinds: tuple[str, ...]) -> None:
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"artifact kinds {list(kinds)}: choose among {list(KINDS)}")


def artifacts_from_neighbours(queries: np.ndarray, ids: np.ndarray, dist: np.ndarray, vectors: Vectors,
                              kinds: tuple[str, ...], knn_reg: float, derived: bool = False) -> dict[str, np.ndarray]:
    """The arrays of :func:`artifacts_of_block` from neighbours already found: ``ids`` (n, k) and ``dist`` (n, k)
    ascending, ``vectors(ids)`` giving reference rows (``ids.shape + (D,)``).

    ``derived`` leaves out the (n, D) artifacts and keeps what determines them exactly instead: ``nn_id``, and
    for ``knn`` the projection weights ``knn_coef`` (n, k-1) float64 (``manifpt_core.store.derived``).
    """
    check_kinds(kinds)
    out = {"nn_id": ids[:, 0], "nn_dist": dist[:, 0]}
    if "nearest" in kinds and not derived:
        out["artifact"] = queries - vectors(ids[:, 0])
    if "knn" in kinds:
        coef = np.concatenate([projection_weights(queries[s : s + PROJECTION_ROWS], vectors(ids[s : s + PROJECTION_ROWS]),
                                                  knn_reg) for s in range(0, len(queries), PROJECTION_ROWS)])
        residual = queries - _projections(vectors, ids, coef)
        out.update(knn_ids=ids, knn_dist=np.sqrt(np.einsum("nd,nd->n", residual, residual,
                                                           dtype=np.float64)).astype(np.float32))
        out.update({"knn_coef": coef} if derived else {"knn_artifact": residual})
    return out


def _projections(vectors: Vectors, ids: np.ndarray, coef: np.ndarray) -> np.ndarray:
    if not len(ids):
        return np.empty((0, vectors(ids[:0, 0]).shape[-1]), np.float32)
    return np.concatenate([apply_weights(vectors(ids[s : s + PROJECTION_ROWS]), coef[s : s + PROJECTION_ROWS])
                           for s in range(0, len(ids), PROJECTION_ROWS)])
