"""Reduced-precision candidate scores and the certificate that they missed no neighbour.

With ``search.precision`` ``fp16`` or ``bf16`` the torch engines score candidates
``|r|^2 - 2 q.r`` from inputs rounded to that format (products accumulated in
float32), fetch ``margin`` more candidates than in fp32, and re-rank them exactly.
A worst-case bound on the scoring error then proves, query by query, that no row
outside the candidates can be nearer than the k-th neighbour found: if the k-th
exact squared distance lies below ``|q|^2 + (largest candidate score) - bound``,
the answer is the exact one. A query that cannot be proved that way is searched
again in fp32, so the answer never depends on the precision; only the speed does.

The bound (Higham, Accuracy and Stability of Numerical Algorithms, ch. 3) per query
q, over every reference row (|r| <= R, ``gamma = d u32 / (1 - d u32)``):

    dot:   (2u + u^2 + gamma (1 + u)^2) |q| R + eta (1 + u) sqrt(d) (|q| + R) + d eta^2,
           + u (|q| R + dot error) + eta when the product itself is stored in the format (the CPU)
    score: 2 dot + (gamma + 3 u32) (R^2 + 2 |q| R + 2 dot)

with ``u`` the format's unit roundoff and ``eta`` its absolute rounding error near
zero (subnormals may be flushed), doubled for safety. It assumes
nothing about the data but its norms, so it is loose where near neighbours are close
relative to the norms; the fp32 fallback then costs time, never accuracy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from manifpt_core.errors import InputError

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
UNIT_ROUNDOFF = {"fp16": 2.0**-11, "bf16": 2.0**-8}
# Absolute rounding error near zero, of an input or of a product stored in the format: kernels may flush
# subnormals to zero (the CPU's fp16 ones do), so up to the smallest normal number, 2^-14 in fp16; bf16 has
# float32's range, 2^-126.
ABSOLUTE_ERROR = {"fp16": 2.0**-14, "bf16": 2.0**-126}
FP16_MAX = 65504.0
U32 = 2.0**-24
SAFETY = 2.0
# Extra candidates fetched in reduced precision. Measured on the CPU (products rounded to the format): fp16
# with 32 certified every query of seeded Gaussian and clustered non-negative data at d = 128 and 784; bf16
# with 64 certified all of Gaussian d = 128 and 93% at d = 784, but almost none of the clustered data, whose
# near neighbours are closer than bf16's 8 bits can tell apart at their norms: there bf16 costs a second,
# fp32 search, and fp16 is the format to use (docs/decisions.md).
MARGIN = {"fp16": 32, "bf16": 64}


def score_error_bound(q_norms: np.ndarray, r_max: float, d: int, precision: str, rounded_product: bool) -> np.ndarray:
    """Worst-case |score - exact score| (float64, one per query) for candidates scored in ``precision``.

    ``q_norms`` and ``r_max`` are the norms of the vectors as rounded (after any centring in float32, whose
    own rounding, at most ``U32`` relative, is added to the format's).
    """
    u, eta = UNIT_ROUNDOFF[precision] + 2 * U32, ABSOLUTE_ERROR[precision]
    gamma = d * U32 / (1 - d * U32)
    a = q_norms.astype(np.float64) * r_max
    dot = (2 * u + u * u + gamma * (1 + u) ** 2) * a + eta * (1 + u) * math.sqrt(d) * (q_norms + r_max) + d * eta**2
    if rounded_product:
        dot = dot + u * (a + dot) + eta
    return SAFETY * (2 * dot + (gamma + 3 * U32) * (r_max**2 + 2 * a + 2 * dot))


def certified(kth_squared: np.ndarray, q_norms: np.ndarray, largest_score: np.ndarray, bound: np.ndarray,
              rerank_eps: float) -> np.ndarray:
    """Which queries provably have their k nearest rows among the candidates (bool, one per query).

    Every row left out scored at least ``largest_score`` (the largest candidate score), so its exact
    squared distance is at least ``|q|^2 + largest_score - bound``; the k-th exact distance found must lie
    strictly below that, with ``rerank_eps`` (relative) for the rounding of the re-rank itself.
    """
    q2 = q_norms.astype(np.float64) ** 2
    floor = q2 + largest_score.astype(np.float64) - bound
    slack = rerank_eps * (kth_squared + q2 + np.abs(largest_score))
    return kth_squared + slack < floor


def check_range(x: np.ndarray | torch.Tensor, precision: str, what: str) -> None:
    """fp16 holds magnitudes up to 65504; larger values would become inf and poison the scores."""
    if precision != "fp16":
        return
    largest = float(x.abs().max()) if isinstance(x, torch.Tensor) else float(np.abs(x).max(initial=0.0))
    if not largest <= FP16_MAX:
        raise InputError(f"search.precision = 'fp16' holds values up to {FP16_MAX:g}, but the {what} reach "
                         f"{largest:g}; use precision 'bf16' (float32's range) or 'fp32'")


def check_products(q_norm_max: float, r_max: float, precision: str) -> None:
    """On the CPU the fp16 product itself is stored in fp16: |q.r| <= |q| |r| must stay below 65504."""
    if precision == "fp16" and not q_norm_max * r_max < FP16_MAX / (1 + 4 * UNIT_ROUNDOFF["fp16"]):
        raise InputError(f"search.precision = 'fp16' on the CPU stores products q.r in fp16 (at most {FP16_MAX:g}),"
                         f" but |q| |r| reaches {q_norm_max * r_max:g} here; use 'bf16' on the CPU, or 'fp32'")
