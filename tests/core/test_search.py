"""Nearest-neighbour search and artifacts against a brute-force numpy reference on seeded data."""

import numpy as np
import pytest

from manifpt_core.artifacts import artifacts_of_block, stream_artifacts
from manifpt_core.search import build_flat_index, nearest


def brute_force(reference, queries, exclude=None):
    d2 = ((queries[:, None, :].astype(np.float64) - reference[None].astype(np.float64)) ** 2).sum(-1)
    if exclude is not None:
        d2[np.arange(len(queries)), exclude] = np.inf
    ids = d2.argmin(1)
    return ids, np.sqrt(d2[np.arange(len(queries)), ids])


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    return rng.standard_normal((800, 24)).astype(np.float32), rng.standard_normal((300, 24)).astype(np.float32)


def test_nearest_equals_brute_force(data):
    reference, queries = data
    ids, dist = nearest(build_flat_index(reference), reference, queries)
    ref_ids, ref_dist = brute_force(reference, queries)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-6)


def test_a_sample_is_never_its_own_neighbour(data):
    reference, _ = data
    rows = np.arange(len(reference))
    ids, _ = nearest(build_flat_index(reference), reference, reference, exclude=rows)
    assert not np.any(ids == rows)
    np.testing.assert_array_equal(ids, brute_force(reference, reference, exclude=rows)[0])


def test_exact_duplicates_are_excluded_only_by_row(data):
    reference, _ = data
    ids, dist = nearest(build_flat_index(reference), reference, reference[:5])
    np.testing.assert_array_equal(ids, np.arange(5))  # without exclusion, a reference row finds itself
    assert np.all(dist == 0)


def test_ties_go_to_the_smaller_row():
    reference = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0]], dtype=np.float32)
    ids, dist = nearest(build_flat_index(reference), reference, np.zeros((1, 2), np.float32))
    assert ids[0] == 0 and dist[0] == pytest.approx(1.0)


def test_artifacts_equal_brute_force_and_ignore_block_size(data):
    reference, queries = data
    index = build_flat_index(reference)
    ref_ids, ref_dist = brute_force(reference, queries)
    expected = queries - reference[ref_ids]
    nn_id, nn_dist, artifact = artifacts_of_block(index, reference, queries)
    np.testing.assert_array_equal(nn_id, ref_ids)
    np.testing.assert_allclose(artifact, expected, rtol=0, atol=0)
    np.testing.assert_allclose(nn_dist, np.linalg.norm(expected, axis=1), rtol=1e-6)
    for block in (1, 7, 128, 300):
        parts = list(stream_artifacts(index, reference, (queries[s : s + block] for s in range(0, 300, block))))
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), nn_id)
        np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), artifact)


def test_search_checks_inputs(data):
    reference, queries = data
    index = build_flat_index(reference)
    with pytest.raises(TypeError, match="float32"):
        nearest(index, reference, queries.astype(np.float64))
    with pytest.raises(TypeError, match="dimension 23, the index has 24"):
        nearest(index, reference, queries[:, :23].copy())
    with pytest.raises(TypeError, match="2-D"):
        nearest(index, reference, queries[0])
