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
    x = np.asarray(x)
    neighbours = np.asarray(neighbours)
    if x.ndim != 2 or neighbours.ndim != 3 or neighbours.shape[0] != x.shape[0] or neighbours.shape[2] != x.shape[1]:
        raise ValueError(f"expected x (n, D) and neighbours (n, k, D), got {x.shape} and {neighbours.shape}")
    if neighbours.shape[1] < 1:
        raise ValueError("the projection needs at least one neighbour per point")
    if reg < 0 or not np.isfinite(reg):
        raise ValueError(f"reg must be a finite number >= 0, got {reg}")
    origin = neighbours[:, 0, :].astype(np.float64)
    if neighbours.shape[1] == 1:
        return origin.astype(np.float32)
    basis = neighbours[:, 1:, :].astype(np.float64) - origin[:, None, :]  # (n, k-1, D)
    offset = x.astype(np.float64) - origin  # (n, D)
    gram = np.einsum("nid,njd->nij", basis, basis)
    rhs = np.einsum("nid,nd->ni", basis, offset)
    if reg > 0:
        scale = np.trace(gram, axis1=1, axis2=2) / gram.shape[1]
        # A patch of identical points has scale 0; any positive ridge then gives c = 0 (x* = r_0).
        ridge = reg * np.where(scale > 0, scale, 1.0)
        coef = np.linalg.solve(gram + ridge[:, None, None] * np.eye(gram.shape[1]), rhs[..., None])[..., 0]
    else:
        coef = np.einsum("nij,nj->ni", np.linalg.pinv(gram, hermitian=True), rhs)
    return (origin + np.einsum("ni,nid->nd", coef, basis)).astype(np.float32)
