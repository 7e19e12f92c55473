"""Local-manifold projection: a better estimate of x* than the single nearest real point.

The nearest reference point is a coarse estimate of where ``x`` would sit on
the real-data manifold: its artifact mixes the generator's error with the gap
between reference samples. Projecting ``x`` onto the affine span of its k
nearest reference points (a local linear patch of the manifold) removes the
part of that gap the patch explains. With ``k`` points in ``D`` dimensions the
patch is spanned by ``B = [r_1 - r_0, ..., r_{k-1} - r_0]`` and

    x* = r_0 + B c,   c = argmin |x - r_0 - B c|^2 + reg * s * |c|^2,

where ``s = trace(B^T B) / (k - 1)`` makes ``reg`` independent of the scale of
the space. ``reg = 0`` is the exact orthogonal projection (a point on the patch
is its own projection); a small ``reg`` keeps nearly collinear neighbours from
producing wild extrapolations.
"""

from __future__ import annotations

import numpy as np


def project_to_span(x: np.ndarray, neighbours: np.ndarray, reg: float = 0.0) -> np.ndarray:
    """Project each ``x[i]`` (n, D) onto the affine span of ``neighbours[i]`` (n, k, D); float32 (n, D).

    The small (k-1)-square systems are solved in float64. With ``reg = 0`` the
    least-squares solution of smallest norm is used, so duplicate or collinear
    neighbours are handled exactly.
    """
    return apply_weights(neighbours, projection_weights(x, neighbours, reg))


def projection_weights(x: np.ndarray, neighbours: np.ndarray, reg: float = 0.0) -> np.ndarray:
    """The coordinates ``c`` (n, k-1) float64 of each projection in its patch: ``x* = r_0 + B c``.

    With the neighbours, they determine the projection exactly (:func:`apply_weights`), so a store
    can keep ``c`` instead of the (n, D) projections.
    """
    x = np.asarray(x)
    neighbours = np.asarray(neighbours)
    if x.ndim != 2 or neighbours.ndim != 3 or neighbours.shape[0] != x.shape[0] or neighbours.shape[2] != x.shape[1]:
        raise ValueError(f"expected x (n, D) and neighbours (n, k, D), got {x.shape} and {neighbours.shape}")
    if neighbours.shape[1] < 1:
        raise ValueError("the projection needs at least one neighbour per point")
    if reg < 0 or not np.isfinite(reg):
        raise ValueError(f"reg must be a finite number >= 0, got {reg}")
    if neighbours.shape[1] == 1:
        return np.zeros((len(x), 0))
    origin = neighbours[:, 0, :].astype(np.float64)
    basis = neighbours[:, 1:, :].astype(np.float64) - origin[:, None, :]  # (n, k-1, D)
    offset = x.astype(np.float64) - origin  # (n, D)
    gram = np.einsum("nid,njd->nij", basis, basis)
    rhs = np.einsum("nid,nd->ni", basis, offset)
    if reg > 0:
        scale = np.trace(gram, axis1=1, axis2=2) / gram.shape[1]
        # A patch of identical points has scale 0; any positive ridge then gives c = 0 (x* = r_0).
        ridge = reg * np.where(scale > 0, scale, 1.0)
        return np.linalg.solve(gram + ridge[:, None, None] * np.eye(gram.shape[1]), rhs[..., None])[..., 0]
    return np.einsum("nij,nj->ni", np.linalg.pinv(gram, hermitian=True), rhs)


def apply_weights(neighbours: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """The projections ``r_0 + B c`` (n, D) float32 from the neighbours (n, k, D) and their weights (n, k-1).

    Row by row the same arithmetic whatever ``n``, so weights stored by one pass and applied by another give
    the same bits.
    """
    neighbours = np.asarray(neighbours)
    coef = np.asarray(coef, dtype=np.float64)
    if neighbours.ndim != 3 or coef.shape != (neighbours.shape[0], neighbours.shape[1] - 1):
        raise ValueError(f"expected neighbours (n, k, D) and weights (n, k-1), got {neighbours.shape} and {coef.shape}")
    origin = neighbours[:, 0, :].astype(np.float64)
    if neighbours.shape[1] == 1:
        return origin.astype(np.float32)
    basis = neighbours[:, 1:, :].astype(np.float64) - origin[:, None, :]
    return (origin + np.einsum("ni,nid->nd", coef, basis)).astype(np.float32)
