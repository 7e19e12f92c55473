"""Enrolling classes into a trained attributor's head: kept rows untouched, the new rows at the convex optimum."""

import dataclasses

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from manifpt_core.attribution import FitSettings, fit_attributor, predict_logits
from manifpt_core.attribution.enroll import NEWTON_MAX_PARAMETERS, enroll, fit_new_rows, head_logits, head_of
from manifpt_core.errors import InputError

SETTINGS = FitSettings(epochs=3, patience=3, batch_size=32, mlp_hidden=(16,), precision="fp32")


def _blobs(rng, n_classes, n=60, d=6):
    centres = rng.normal(0, 3, (n_classes, d))
    y = np.repeat(np.arange(n_classes), n)
    return (centres[y] + rng.normal(0, 1, (len(y), d))).astype(np.float32), y


@pytest.fixture(scope="module")
def trained():
    """An MLP attributor on classes a, b, c, and the samples of a fourth class d it never saw."""
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, 4)
    old = y < 3
    result = fit_attributor(x[old], y[old], x[old], y[old], 3, SETTINGS, seed=0, progress=False)
    return result, x, y


def test_kept_classes_keep_their_logits_and_predictions_move_only_to_the_new_class(trained):
    result, x, y = trained
    _, features = predict_logits(result, x, return_features=True)
    new_classes = ["a", "d", "b", "c"]  # the added class sorts between kept ones, as model names do
    labels = np.array([new_classes.index("abcd"[i]) for i in y])
    enrolled = enroll(result, ["a", "b", "c"], new_classes, features, labels)
    before = predict_logits(result, x)
    after = predict_logits(enrolled, x)
    kept = [new_classes.index(c) for c in "abc"]
    np.testing.assert_allclose(after[:, kept], before, rtol=1e-5, atol=1e-5)
    old_pred = np.array(list("abc"))[before.argmax(1)]
    new_pred = np.array(new_classes)[after.argmax(1)]
    changed = old_pred != new_pred
    assert set(new_pred[changed]) <= {"d"}
    assert (new_pred[y == 3] == "d").mean() > 0.9  # the enrolled class is learned
    # The network below the head is the same.
    assert all(torch.equal(enrolled.state_dict[k], result.state_dict[k]) for k in result.state_dict if "head" not in k)


def test_new_rows_are_the_penalized_cross_entropy_optimum():
    rng = np.random.default_rng(1)
    x, y = _blobs(rng, 3, n=40, d=4)
    fixed_w, fixed_b = rng.normal(0, 1, (2, 4)).astype(np.float32), rng.normal(0, 1, 2).astype(np.float32)
    decay = 1e-2
    w, b = fit_new_rows(fixed_w, fixed_b, x, y, 1, decay)

    def loss(w_, b_):
        logits = torch.cat([torch.from_numpy(x.astype(np.float64)) @ torch.from_numpy(fixed_w.astype(np.float64)).T
                            + torch.from_numpy(fixed_b.astype(np.float64)),
                            torch.from_numpy(x.astype(np.float64)) @ w_.T + b_], dim=1)
        return F.cross_entropy(logits, torch.from_numpy(y)) + 0.5 * decay * w_.pow(2).sum()

    w_t = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    b_t = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    value = loss(w_t, b_t)
    value.backward()
    assert float(w_t.grad.abs().max()) < 1e-3 and float(b_t.grad.abs().max()) < 1e-3
    # Convex: no point around the optimum is lower.
    for _ in range(20):
        step = torch.from_numpy(rng.normal(0, 0.05, (1, 4)))
        assert float(loss(w_t.detach() + step, b_t.detach())) >= float(value.detach()) - 1e-9


def test_removed_classes_lose_their_row(trained):
    result, x, y = trained
    _, features = predict_logits(result, x, return_features=True)
    enrolled = enroll(result, ["a", "b", "c"], ["a", "c"], features[y != 1], np.zeros((y != 1).sum(), int))
    weight, bias = head_of(enrolled)
    old_w, old_b = head_of(result)
    np.testing.assert_array_equal(weight, old_w[[0, 2]])
    np.testing.assert_array_equal(bias, old_b[[0, 2]])
    np.testing.assert_allclose(head_logits(weight, bias, features), predict_logits(enrolled, x), rtol=1e-5, atol=1e-5)


def test_bad_enrollments_are_refused(trained):
    result, x, y = trained
    _, features = predict_logits(result, x, return_features=True)
    with pytest.raises(InputError, match="no training samples"):
        enroll(result, ["a", "b", "c"], ["a", "b", "c", "d"], features[y < 3], y[y < 3])
    with pytest.raises(InputError, match="nothing to enroll into"):
        enroll(result, ["a", "b", "c"], ["x", "y"], features, y % 2)
    with pytest.raises(InputError, match="3 classes"):
        enroll(result, ["a", "b"], ["a", "b", "d"], features, y % 3)
    no_head = dataclasses.replace(result, state_dict={k: v for k, v in result.state_dict.items() if "head" not in k})
    with pytest.raises(InputError, match="no linear head"):
        enroll(no_head, ["a", "b", "c"], ["a", "b", "c", "d"], features, y)


def _wide_problem(rng, d, n_new=1, n=240):
    x, y = _blobs(rng, 3 + n_new, n=n // (3 + n_new), d=d)
    return rng.normal(0, 0.5, (3, d)).astype(np.float32), rng.normal(0, 0.5, 3).astype(np.float32), x, y


@pytest.mark.parametrize(("n_new", "d"), [(1, 8), (2, 16), (1, 64)])
def test_newton_and_lbfgs_reach_the_same_optimum(n_new, d):
    """Newton's method (exact Hessian) and L-BFGS minimize the same convex objective: the same rows to
    rounding, and Newton's gradient at least as small."""
    rng = np.random.default_rng(d + n_new)
    fixed_w, fixed_b, x, y = _wide_problem(rng, d, n_new)
    newton = fit_new_rows(fixed_w, fixed_b, x, y, n_new, 1e-3, solver="newton")
    lbfgs = fit_new_rows(fixed_w, fixed_b, x, y, n_new, 1e-3, solver="lbfgs")
    np.testing.assert_allclose(newton[0], lbfgs[0], atol=2e-3)
    np.testing.assert_allclose(newton[1], lbfgs[1], atol=2e-3)

    def gradient(w, b):
        w_t = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        b_t = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        x64 = torch.from_numpy(x.astype(np.float64))
        logits = torch.cat([x64 @ torch.from_numpy(fixed_w.astype(np.float64)).T
                            + torch.from_numpy(fixed_b.astype(np.float64)), x64 @ w_t.T + b_t], dim=1)
        (F.cross_entropy(logits, torch.from_numpy(y)) + 0.5e-3 * w_t.pow(2).sum()).backward()
        return max(float(w_t.grad.abs().max()), float(b_t.grad.abs().max()))

    assert gradient(*newton) < 1e-5  # float32 rounding of the returned rows bounds it
    assert gradient(*newton) <= gradient(*lbfgs) + 1e-6


def test_auto_uses_newton_for_a_narrow_head_and_lbfgs_for_a_wide_one():
    rng = np.random.default_rng(7)
    narrow = _wide_problem(rng, 8)
    for got, want in zip(fit_new_rows(*narrow, 1, 1e-3), fit_new_rows(*narrow, 1, 1e-3, solver="newton")):
        np.testing.assert_array_equal(got, want)
    wide = _wide_problem(rng, NEWTON_MAX_PARAMETERS)  # D + 1 unknowns: one more than Newton takes
    for got, want in zip(fit_new_rows(*wide, 1, 1e-3, max_iter=20), fit_new_rows(*wide, 1, 1e-3, max_iter=20,
                                                                               solver="lbfgs")):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(InputError, match="solver = 'sgd'"):
        fit_new_rows(*narrow, 1, 1e-3, solver="sgd")
