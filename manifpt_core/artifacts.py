"""Artifacts: a query x minus an estimate x* of its real counterpart on the reference manifold.

Two estimates of x* (the *kinds* of artifact):

- ``nearest``: the nearest reference point (the paper's definition);
- ``knn``: the projection of x onto the affine span of its k nearest reference
  points (``manifpt_core.projection``), a local linear patch of the manifold.
"""

from __future__ import annotations

import numpy as np

from manifpt_core.projection import project_to_span
from manifpt_core.search import Searcher

KINDS = ("nearest", "knn")
PROJECTION_ROWS = 512  # queries projected at a time: bounds the (rows, k, D) float64 neighbour patches


def artifacts_of_block(
    searcher: Searcher, queries: np.ndarray, kinds: tuple[str, ...] = ("nearest",), knn_k: int = 8, knn_reg: float = 1e-3
) -> dict[str, np.ndarray]:
    """The arrays of one block of float32 query vectors (n, D), for each kind asked.

    Always ``nn_id`` (n,) and ``nn_dist`` (n,); ``nearest`` adds ``artifact`` (n, D);
    ``knn`` adds ``knn_ids`` (n, k), ``knn_artifact`` (n, D) and ``knn_dist`` (n,),
    the distance from x to its projection.
    """
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"artifact kinds {list(kinds)}: choose among {list(KINDS)}")
    ids, dist = searcher.search(queries, k=knn_k if "knn" in kinds else 1)
    out = {"nn_id": ids[:, 0], "nn_dist": dist[:, 0]}
    if "nearest" in kinds:
        out["artifact"] = queries - searcher.vectors(ids[:, 0])
    if "knn" in kinds:
        projected = np.concatenate([
            project_to_span(queries[s : s + PROJECTION_ROWS], searcher.vectors(ids[s : s + PROJECTION_ROWS]), knn_reg)
            for s in range(0, len(queries), PROJECTION_ROWS)])
        residual = queries - projected
        out.update(knn_ids=ids, knn_artifact=residual,
                   knn_dist=np.sqrt(np.einsum("nd,nd->n", residual, residual, dtype=np.float64)).astype(np.float32))
    return out
