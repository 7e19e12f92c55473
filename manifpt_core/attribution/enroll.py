"""Enrolling generative models into a trained attributor: new output classes on its frozen features.

An attributor is a feature extractor (the network up to its penultimate layer) and a linear head, one row per
class. Enrolling keeps both: the rows of the classes that stay are copied, a removed class's row is dropped, and
each added class gets a row trained on the frozen features of every class's training samples with the kept rows
fixed. With the kept rows fixed the cross-entropy is convex in the new rows, so the fit (in float64, L2 weight
``weight_decay`` as the attributor's training uses; Newton's method for a head of up to about a thousand unknowns,
L-BFGS for wider ones) has one optimum and needs no seed. The kept classes'
logits are those of the attributor enrolled into; a prediction among them can only change to an added class.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.nn import functional as F

from manifpt_core.attribution.result import FitResult
from manifpt_core.errors import InputError

HEAD_WEIGHT, HEAD_BIAS = "head.weight", "head.bias"  # every attributor network names its last layer ``head``
MAX_ITER = 200  # iterations of the new rows' fit (L-BFGS; Newton stops long before)
NEWTON_MAX_PARAMETERS = 1100  # unknowns (n_new x (D + 1)) up to which the fit uses Newton's method
NEWTON_TOLERANCE = 1e-9  # largest gradient entry at which Newton's method stops


def head_of(result: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """The head's weights (classes, D) and biases (classes,) as float32."""
    missing = [k for k in (HEAD_WEIGHT, HEAD_BIAS) if k not in result.state_dict]
    if missing:
        raise InputError(f"this attributor has no linear head ({missing} missing from its weights); it cannot "
                         "enroll models: train it in full (attribution.retrain = 'full')")
    return (result.state_dict[HEAD_WEIGHT].float().numpy(), result.state_dict[HEAD_BIAS].float().numpy())


def head_logits(weight: np.ndarray, bias: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Logits (n, classes) float32 of a head on penultimate features (n, D), in float32 as predictions are."""
    return F.linear(torch.from_numpy(np.asarray(features, np.float32)), torch.from_numpy(weight),
                    torch.from_numpy(bias)).numpy()


def fit_new_rows(fixed_weight: np.ndarray, fixed_bias: np.ndarray, features: np.ndarray, labels: np.ndarray,
                 n_new: int, weight_decay: float, max_iter: int = MAX_ITER, solver: str = "auto"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rows (n_new, D) and biases (n_new,) for classes ``len(fixed) .. len(fixed) + n_new - 1``: the minimum of the
    mean cross-entropy of every sample (``labels`` index the fixed classes then the new ones) plus
    ``weight_decay / 2`` times the new rows' squared norm, the fixed rows held.

    ``solver``: ``newton`` (exact Hessian, a few iterations: for up to NEWTON_MAX_PARAMETERS unknowns, e.g. one
    model on a 256-wide head), ``lbfgs`` (any size), or ``auto`` (Newton when it fits). Both stop at the same
    optimum, to rounding."""
    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.int64)
    n_fixed = len(fixed_weight)
    if x.ndim != 2 or len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() >= n_fixed + n_new)):
        raise InputError(f"features {tuple(x.shape)} and labels {tuple(y.shape)} do not match {n_fixed} + {n_new} "
                         "classes")
    missing = sorted(set(range(n_fixed, n_fixed + n_new)) - set(y.tolist()))
    if missing:
        raise InputError(f"new class(es) {missing} have no training samples to enroll from")
    if solver not in ("auto", "newton", "lbfgs"):
        raise InputError(f"solver = {solver!r} is not one of ['auto', 'newton', 'lbfgs']")
    fixed = x @ np.asarray(fixed_weight, np.float64).T + np.asarray(fixed_bias, np.float64)
    if solver == "newton" or (solver == "auto" and n_new * (x.shape[1] + 1) <= NEWTON_MAX_PARAMETERS):
        return _newton(x, y, fixed, n_new, weight_decay, max_iter)
    return _lbfgs(x, y, fixed, n_new, weight_decay, max_iter)


def _objective(x1: np.ndarray, y: np.ndarray, fixed: np.ndarray, theta: np.ndarray, decay: float
               ) -> tuple[float, np.ndarray]:
    """Penalized mean cross-entropy at ``theta`` (n_new, D + 1: weights then bias) and the softmax (n, classes);
    ``x1``: the features with a column of ones."""
    logits = np.concatenate([fixed, x1 @ theta.T], axis=1)
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    loss = float(np.mean(log_norm - logits[np.arange(len(y)), y]) + 0.5 * decay * np.sum(theta[:, :-1] ** 2))
    return loss, np.exp(logits - log_norm[:, None])


def _newton(x: np.ndarray, y: np.ndarray, fixed: np.ndarray, n_new: int, decay: float, max_iter: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton's method with a backtracking line search on the convex objective of :func:`fit_new_rows`."""
    n, d1 = len(x), x.shape[1] + 1
    x1 = np.concatenate([x, np.ones((n, 1))], axis=1)
    targets = (y[:, None] == np.arange(fixed.shape[1], fixed.shape[1] + n_new)[None, :]).astype(np.float64)
    penalty = np.tile(np.r_[np.full(d1 - 1, decay), 0.0], n_new)  # no penalty on the biases
    theta = np.zeros((n_new, d1))
    loss, probs = _objective(x1, y, fixed, theta, decay)
    for _ in range(max_iter):
        p = probs[:, fixed.shape[1]:]
        grad = ((p - targets).T @ x1 / n).ravel() + penalty * theta.ravel()
        if np.abs(grad).max() < NEWTON_TOLERANCE:
            break
        hessian = np.empty((n_new * d1, n_new * d1))
        for j in range(n_new):
            for k in range(j, n_new):
                weights = p[:, j] * ((j == k) - p[:, k]) / n
                block = (x1 * weights[:, None]).T @ x1
                hessian[j * d1:(j + 1) * d1, k * d1:(k + 1) * d1] = block
                hessian[k * d1:(k + 1) * d1, j * d1:(j + 1) * d1] = block.T
        hessian[np.diag_indices_from(hessian)] += penalty + 1e-12  # damping: an unpenalized bias may be flat
        step = np.linalg.solve(hessian, grad).reshape(n_new, d1)
        slope, size = float(grad @ step.ravel()), 1.0
        while size >= 1e-10:  # Armijo backtracking: a full step near the optimum, a shorter one far from it
            trial = theta - size * step
            trial_loss, trial_probs = _objective(x1, y, fixed, trial, decay)
            if trial_loss <= loss - 1e-4 * size * slope:
                break
            size /= 2
        else:  # no descent left at rounding level: theta is the optimum
            break
        theta, loss, probs = trial, trial_loss, trial_probs
    return theta[:, :-1].astype(np.float32), theta[:, -1].astype(np.float32)


def _lbfgs(x: np.ndarray, y: np.ndarray, fixed: np.ndarray, n_new: int, decay: float, max_iter: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """L-BFGS (torch, float64) on the objective of :func:`fit_new_rows`: for heads too wide for Newton."""
    x_t, y_t, fixed_t = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(fixed)
    weight = torch.zeros((n_new, x.shape[1]), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_new, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.cat([fixed_t, x_t @ weight.T + bias], dim=1)
        loss = F.cross_entropy(logits, y_t) + 0.5 * decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().float().numpy(), bias.detach().float().numpy()


def enroll(result: FitResult, old_classes: list[str], new_classes: list[str], features: np.ndarray,
           labels: np.ndarray, weight_decay: float | None = None) -> FitResult:
    """``result`` (trained on ``old_classes``) with a head over ``new_classes``: kept classes' rows copied, removed
    ones dropped, added ones fit by :func:`fit_new_rows` on the training ``features`` (n, D) of every class of
    ``new_classes`` (``labels`` are positions in it). The network below the head is the same."""
    if len(set(new_classes)) != len(new_classes) or len(set(old_classes)) != len(old_classes):
        raise InputError(f"class lists must not repeat a name: {old_classes} -> {new_classes}")
    if len(old_classes) != result.num_classes:
        raise InputError(f"the attributor has {result.num_classes} classes, not the {len(old_classes)} given")
    weight, bias = head_of(result)
    kept = [c for c in new_classes if c in old_classes]
    added = [c for c in new_classes if c not in old_classes]
    if not kept:
        raise InputError(f"none of the classes {old_classes} stays in {new_classes}: nothing to enroll into")
    fixed_w = weight[[old_classes.index(c) for c in kept]]
    fixed_b = bias[[old_classes.index(c) for c in kept]]
    new_w = np.zeros((0, weight.shape[1]), np.float32)
    new_b = np.zeros(0, np.float32)
    if added:
        order = [*kept, *added]  # fixed rows first, as fit_new_rows numbers them
        remap = np.array([order.index(c) for c in new_classes])
        decay = result.settings.weight_decay if weight_decay is None else weight_decay
        new_w, new_b = fit_new_rows(fixed_w, fixed_b, features, remap[np.asarray(labels)], len(added), decay)
    rows = {**dict(zip(kept, zip(fixed_w, fixed_b))), **dict(zip(added, zip(new_w, new_b)))}
    state = dict(result.state_dict)
    state[HEAD_WEIGHT] = torch.from_numpy(np.stack([rows[c][0] for c in new_classes]).astype(np.float32))
    state[HEAD_BIAS] = torch.from_numpy(np.array([rows[c][1] for c in new_classes], dtype=np.float32))
    return dataclasses.replace(result, state_dict=state, num_classes=len(new_classes))
