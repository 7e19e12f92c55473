"""Enrolling generative models into a trained attributor: new output classes on its frozen features.

An attributor is a feature extractor (the network up to its penultimate layer) and a linear head, one row per
class. Enrolling keeps both: the rows of the classes that stay are copied, a removed class's row is dropped, and
each added class gets a row trained on the frozen features of every class's training samples with the kept rows
fixed. With the kept rows fixed the cross-entropy is convex in the new rows, so the fit (L-BFGS in float64, L2
weight ``weight_decay`` as the attributor's training uses) has one optimum and needs no seed. The kept classes'
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
MAX_ITER = 200  # L-BFGS iterations of the new rows' fit


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
                 n_new: int, weight_decay: float, max_iter: int = MAX_ITER) -> tuple[np.ndarray, np.ndarray]:
    """Rows (n_new, D) and biases (n_new,) for classes ``len(fixed) .. len(fixed) + n_new - 1``: the minimum of the
    mean cross-entropy of every sample (``labels`` index the fixed classes then the new ones) plus
    ``weight_decay / 2`` times the new rows' squared norm, the fixed rows held."""
    x = torch.from_numpy(np.asarray(features, np.float64))
    y = torch.from_numpy(np.asarray(labels, np.int64))
    n_fixed = len(fixed_weight)
    if x.ndim != 2 or len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() >= n_fixed + n_new)):
        raise InputError(f"features {tuple(x.shape)} and labels {tuple(y.shape)} do not match {n_fixed} + {n_new} "
                         "classes")
    missing = sorted(set(range(n_fixed, n_fixed + n_new)) - set(y.tolist()))
    if missing:
        raise InputError(f"new class(es) {missing} have no training samples to enroll from")
    fixed = x @ torch.from_numpy(np.asarray(fixed_weight, np.float64)).T + torch.from_numpy(
        np.asarray(fixed_bias, np.float64))
    weight = torch.zeros((n_new, x.shape[1]), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_new, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.cat([fixed, x @ weight.T + bias], dim=1)
        loss = F.cross_entropy(logits, y) + 0.5 * weight_decay * weight.pow(2).sum()
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
