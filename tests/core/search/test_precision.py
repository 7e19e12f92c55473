"""Reduced-precision candidates (``search.precision``): the certified answer is fp32's, on seeded data."""

import logging

import numpy as np
import pytest
import torch

from manifpt_core.errors import InputError
from manifpt_core.search import Searcher, SearchSettings, build_flat_index
from manifpt_core.search.engines import TorchEngine
from manifpt_core.search.precision import DTYPES, certified, score_error_bound

NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
# torch runs fp16 products on the CPU too, slowly (no fast CPU kernel), so both formats are tested everywhere;
# the CUDA cases, where the formats are meant to run, need a GPU.
SETUPS = [
    pytest.param("cpu", "bf16", id="cpu-bf16"),
    pytest.param("cpu", "fp16", id="cpu-fp16"),
    pytest.param("cuda", "bf16", marks=NO_CUDA, id="cuda-bf16"),
    pytest.param("cuda", "fp16", marks=NO_CUDA, id="cuda-fp16"),
]


def gaussian(n_ref, n_q, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_ref, d), dtype=np.float32), rng.standard_normal((n_q, d), dtype=np.float32)


def clustered(n_ref, n_q, d, seed=0):
    """Non-negative rows around 20 centres: near neighbours close relative to the norms, the hard case."""
    rng = np.random.default_rng(seed)
    centres = 2 * np.abs(rng.standard_normal((20, d)))

    def draw(n):
        return np.maximum(centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, d)), 0).astype(np.float32)

    return draw(n_ref), draw(n_q)


def brute_force_top_k(reference, queries, k):
    """The k nearest rows by float64 distance, ties to the smaller row (a stable sort)."""
    d2 = ((queries[:, None, :].astype(np.float64) - reference[None].astype(np.float64)) ** 2).sum(-1)
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def fp32_answer(index, queries, k, device, exclude=None):
    return Searcher(index, SearchSettings(), device).search(queries, k, exclude=exclude)


def assert_same(found, expected, device):
    np.testing.assert_array_equal(found[0], expected[0])
    if device == "cpu":  # both re-ranked in float64 on the CPU: the same distances, bit for bit
        np.testing.assert_array_equal(found[1], expected[1])
    else:  # the CUDA re-rank is float32, and a query searched again alone may round differently
        np.testing.assert_allclose(found[1], expected[1], rtol=1e-5)


@pytest.mark.parametrize("device, precision", SETUPS)
@pytest.mark.parametrize("k", [1, 5])
def test_reduced_precision_returns_the_fp32_neighbours(device, precision, k):
    reference, queries = gaussian(3000, 300, 64)
    index = build_flat_index(reference)
    searcher = Searcher(index, SearchSettings(precision=precision), device)
    assert searcher.engine == f"torch-{device}/{precision}"
    found = searcher.search(queries, k)
    assert_same(found, fp32_answer(index, queries, k, device), device)
    np.testing.assert_array_equal(found[0], brute_force_top_k(reference, queries, k))


@pytest.mark.parametrize("device, precision", SETUPS)
def test_queries_the_certificate_cannot_prove_are_searched_again_in_fp32(device, precision, caplog):
    reference, queries = clustered(3000, 200, 128)
    index = build_flat_index(reference)
    searcher = Searcher(index, SearchSettings(precision=precision, candidates=0), device)
    engine = searcher._engine
    with caplog.at_level(logging.WARNING, logger="manifpt_core.search.engines"):
        found = searcher.search(queries, 3)
    assert_same(found, fp32_answer(index, queries, 3, device), device)
    assert engine.searched == 200
    if (device, precision) == ("cpu", "bf16"):  # 8 bits (and products rounded to them) cannot separate these
        assert engine.fallbacks > 20 and "searched again in fp32" in caplog.text


@pytest.mark.parametrize("device, precision", SETUPS)
def test_exclusion_and_ties_in_reduced_precision(device, precision):
    reference, _ = gaussian(1500, 0, 16, seed=4)
    index = build_flat_index(reference)
    searcher = Searcher(index, SearchSettings(precision=precision), device)
    exclude = np.arange(len(reference))
    exclude[::3] = -1
    assert_same(searcher.search(reference, 2, exclude=exclude), fp32_answer(index, reference, 2, device, exclude),
                device)
    # 6 rows at distance 1 from the origin, fewer than fp32's 8 candidates (k + 4): the fp32 torch engine, which
    # a query the certificate cannot prove falls back to, keeps ties to the smaller row only among its candidates.
    tied = np.zeros((6, 8), np.float32)
    tied[np.arange(6), np.arange(6)] = [1, -1, 1, -1, 1, -1]
    far = 20 + np.abs(np.random.default_rng(0).standard_normal((200, 8), dtype=np.float32))
    rows = np.concatenate([far[:100], tied, far[100:]])
    ids, dist = Searcher(build_flat_index(rows), SearchSettings(precision=precision), device).search(
        np.zeros((2, 8), np.float32), 4)
    np.testing.assert_array_equal(ids, [[100, 101, 102, 103]] * 2)  # ties to the smaller row
    np.testing.assert_array_equal(dist, np.ones((2, 4), np.float32))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_query_block_does_not_change_reduced_precision_results(precision):
    reference, queries = gaussian(1200, 300, 32, seed=2)
    index = build_flat_index(reference)
    expected = Searcher(index, SearchSettings(precision=precision)).search(queries, 3)
    for query_block in (1, 7, 300):
        found = Searcher(index, SearchSettings(precision=precision, query_block=query_block)).search(queries, 3)
        np.testing.assert_array_equal(found[0], expected[0])
        np.testing.assert_array_equal(found[1], expected[1])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("data", ["gaussian", "clustered", "tiny", "wide"])
def test_the_error_bound_holds_for_every_pair(precision, data):
    """The certificate rests on this bound: every reduced-precision score within it of the exact one."""
    d = {"gaussian": 64, "clustered": 128, "tiny": 32, "wide": 1000}[data]
    reference, queries = (clustered if data == "clustered" else gaussian)(500, 60, d, seed=7)
    if data == "tiny":  # magnitudes near fp16's subnormals
        reference, queries = reference * 1e-5, queries * 1e-5
    engine = TorchEngine(reference, "cpu", precision)
    q = (torch.from_numpy(queries) - engine.centre).to(DTYPES[precision])
    scores = engine._low_scores(q, 0, len(reference)).double().numpy()
    centred_q = queries.astype(np.float64) - engine.centre64
    centred_r = reference.astype(np.float64) - engine.centre64
    exact = (centred_r**2).sum(1)[None] - 2 * centred_q @ centred_r.T
    bound = score_error_bound(np.linalg.norm(centred_q, axis=1), engine.r_max, d, precision, rounded_product=True)
    error = np.abs(scores - exact)
    assert (error <= bound[:, None]).all()
    if data != "tiny":  # near zero the bound allows for flushed subnormals, far above what these kernels do
        assert error.max() > 1e-3 * bound.max()  # so elsewhere it is not vacuous


def test_certified_needs_the_kth_distance_strictly_below_every_row_left_out():
    q_norms, largest, bound = np.array([2.0, 2.0]), np.array([1.0, 1.0]), np.array([0.5, 0.5])
    # floor = |q|^2 + largest - bound = 4.5
    assert certified(np.array([4.0, 4.5]), q_norms, largest, bound, 0.0).tolist() == [True, False]


def test_every_row_a_candidate_needs_no_certificate():
    reference, queries = clustered(30, 50, 16)
    index = build_flat_index(reference)
    searcher = Searcher(index, SearchSettings(precision="bf16"))  # 1 + 4 + 64 candidates > 30 rows
    assert_same(searcher.search(queries, 2), fp32_answer(index, queries, 2, "cpu"), "cpu")
    assert searcher._engine.fallbacks == 0


def test_fp16_refuses_values_it_cannot_hold():
    reference, queries = gaussian(200, 10, 8)
    big = reference.copy()
    big[3, 2] = 1e5
    with pytest.raises(InputError, match=r"holds values up to 65504, but the reference rows .* reach .*'bf16'"):
        Searcher(build_flat_index(big), SearchSettings(precision="fp16"))
    searcher = Searcher(build_flat_index(reference), SearchSettings(precision="fp16"))
    with pytest.raises(InputError, match=r"the queries \(minus the reference mean\) reach"):
        searcher.search(queries * 1e5)
    with pytest.raises(InputError, match=r"stores products q.r in fp16 .* use 'bf16' on the CPU"):
        searcher.search(queries * 1e4)  # each value fits fp16, but not |q| |r|
    Searcher(build_flat_index(big), SearchSettings(precision="bf16")).search(queries * 1e5)  # bf16 has the range


def test_precision_settings_and_engines():
    assert SearchSettings().settings() == {"backend": "exact", "candidates": 4}  # fingerprints of old stores kept
    assert SearchSettings(precision="bf16").settings() == {"backend": "exact", "candidates": 4, "precision": "bf16"}
    with pytest.raises(InputError, match=r"search.precision = 'fp8' is not one of \('fp32', 'fp16', 'bf16'\)"):
        SearchSettings(precision="fp8")
    with pytest.raises(InputError, match=r"precision = 'fp16' applies to exact search only; backend 'ivf'"):
        SearchSettings(backend="ivf", precision="fp16")
    index = build_flat_index(gaussian(50, 0, 4)[0])
    with pytest.raises(InputError, match=r"precision = 'bf16' runs on the torch engines; engine 'faiss-cpu'"):
        Searcher(index, SearchSettings(precision="bf16"), engine="faiss-cpu")
    assert Searcher(index, SearchSettings(precision="bf16"), engine="torch-cpu").engine == "torch-cpu/bf16"
    assert Searcher(index, SearchSettings()).engine == "faiss-cpu"
