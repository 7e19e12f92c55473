"""The k-NN local-manifold projection against direct least squares on seeded data."""

import numpy as np
import pytest

from manifpt_core.projection import project_to_span


def _patch(rng, n, k, dim):
    return rng.normal(size=(n, k, dim)).astype(np.float32)


def test_a_point_in_its_neighbours_span_is_its_own_projection():
    rng = np.random.default_rng(0)
    neighbours = _patch(rng, 20, 5, 30)
    weights = rng.normal(size=(20, 5))
    weights /= weights.sum(axis=1, keepdims=True)  # affine combination: weights sum to one
    x = np.einsum("nk,nkd->nd", weights, neighbours.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(project_to_span(x, neighbours), x, atol=1e-4)


def test_projection_matches_least_squares_and_the_residual_is_orthogonal():
    rng = np.random.default_rng(1)
    neighbours = _patch(rng, 8, 4, 12)
    x = rng.normal(size=(8, 12)).astype(np.float32)
    got = project_to_span(x, neighbours).astype(np.float64)
    for i in range(8):
        origin = neighbours[i, 0].astype(np.float64)
        basis = (neighbours[i, 1:] - neighbours[i, 0]).astype(np.float64).T  # (D, k-1)
        coef, *_ = np.linalg.lstsq(basis, x[i] - origin, rcond=None)
        np.testing.assert_allclose(got[i], origin + basis @ coef, atol=1e-4)
        np.testing.assert_allclose(basis.T @ (x[i] - got[i]), 0.0, atol=1e-3)


def test_projection_is_never_farther_than_the_nearest_neighbour():
    rng = np.random.default_rng(2)
    neighbours = _patch(rng, 50, 6, 16)
    x = rng.normal(size=(50, 16)).astype(np.float32)
    projected = project_to_span(x, neighbours, reg=1e-3)
    assert np.all(np.linalg.norm(x - projected, axis=1) <= np.linalg.norm(x - neighbours[:, 0], axis=1) + 1e-5)


def test_ridge_shrinks_towards_the_first_neighbour_and_handles_duplicates():
    rng = np.random.default_rng(3)
    neighbours = _patch(rng, 4, 3, 5)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    exact, strong = project_to_span(x, neighbours), project_to_span(x, neighbours, reg=1e6)
    np.testing.assert_allclose(strong, neighbours[:, 0], atol=1e-4)
    assert not np.allclose(exact, neighbours[:, 0], atol=1e-3)
    same = np.repeat(neighbours[:, :1], 3, axis=1)  # a degenerate patch: one point three times
    for reg in (0.0, 1e-3):
        np.testing.assert_allclose(project_to_span(x, same, reg=reg), neighbours[:, 0], atol=1e-5)


def test_one_neighbour_is_the_nearest_point_and_bad_shapes_are_refused():
    rng = np.random.default_rng(4)
    neighbours = _patch(rng, 3, 1, 4)
    np.testing.assert_array_equal(project_to_span(np.zeros((3, 4), np.float32), neighbours), neighbours[:, 0])
    with pytest.raises(ValueError, match="neighbours"):
        project_to_span(np.zeros((3, 5), np.float32), neighbours)
    with pytest.raises(ValueError, match="reg"):
        project_to_span(np.zeros((3, 4), np.float32), neighbours, reg=-1.0)


def test_stored_weights_reproduce_the_projection_bit_for_bit_in_any_row_split():
    from manifpt_core.projection import apply_weights, projection_weights

    rng = np.random.default_rng(5)
    x, neighbours = rng.normal(size=(37, 9)).astype(np.float32), rng.normal(size=(37, 4, 9)).astype(np.float32)
    coef = projection_weights(x, neighbours, reg=1e-3)
    whole = project_to_span(x, neighbours, reg=1e-3)
    assert coef.shape == (37, 3) and coef.dtype == np.float64
    parts = np.concatenate([apply_weights(neighbours[s : s + 5], coef[s : s + 5]) for s in range(0, 37, 5)])
    np.testing.assert_array_equal(parts, whole)
