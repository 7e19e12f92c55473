"""Nearest-neighbour search and artifacts against a brute-force numpy reference on seeded data."""

import json

import faiss
import numpy as np
import pytest
import torch

from manifpt_core.artifacts import artifacts_of_block
from manifpt_core.errors import InputError
from manifpt_core.search import (
    Searcher,
    SearchSettings,
    build_flat_index,
    build_index,
    index_kind,
    load_index,
    measure_recall,
    recall_at_1,
    save_index,
)
from manifpt_core.search.engines import faiss_gpu_available
from manifpt_core.search.index import ivf_lists, stored_vectors

NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
NO_FAISS_GPU = pytest.mark.skipif(not faiss_gpu_available(), reason="faiss has no GPU support here, or sees no GPU")

# Every way to search, with settings under which an approximate index finds every true neighbour
# of the small seeded data (IVF visits all of its lists; HNSW's beam covers half the reference).
SETUPS = {
    "flat-faiss-cpu": (SearchSettings(), "cpu", "faiss-cpu"),
    "flat-torch-cpu": (SearchSettings(), "cpu", "torch-cpu"),
    "ivf-faiss-cpu": (SearchSettings(backend="ivf", nlist=8, nprobe=8), "cpu", None),
    "hnsw-faiss-cpu": (SearchSettings(backend="hnsw", ef_search=400), "cpu", None),
    "flat-torch-cuda": (SearchSettings(), "cuda", "torch-cuda"),
    "flat-faiss-gpu": (SearchSettings(), "cuda", "faiss-gpu"),
    "ivf-faiss-gpu": (SearchSettings(backend="ivf", nlist=8, nprobe=8), "cuda", "faiss-gpu"),
}
MARKS = {"torch-cuda": [NO_CUDA], "faiss-gpu": [NO_FAISS_GPU]}
ALL_SETUPS = [pytest.param(name, marks=MARKS.get(name.split("-", 1)[1], []), id=name) for name in SETUPS]
CPU_SETUPS = [name for name, (_, device, _) in SETUPS.items() if device == "cpu"]


def brute_force(reference, queries, exclude=None):
    d2 = ((queries[:, None, :].astype(np.float64) - reference[None].astype(np.float64)) ** 2).sum(-1)
    if exclude is not None:
        d2[np.arange(len(queries)), exclude] = np.inf
    ids = d2.argmin(1)
    return ids, np.sqrt(d2[np.arange(len(queries)), ids])


def brute_force_top_k(reference, queries, k):
    """The k nearest rows by float64 distance, ties to the smaller row (a stable sort)."""
    d2 = ((queries[:, None, :].astype(np.float64) - reference[None].astype(np.float64)) ** 2).sum(-1)
    ids = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return ids, np.sqrt(np.take_along_axis(d2, ids, axis=1))


def searcher_for(name, reference, **changes):
    settings, device, engine = SETUPS[name]
    settings = SearchSettings(**{**settings.__dict__, **changes})
    return Searcher(build_index(reference, settings), settings, device, engine=engine)


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    return rng.standard_normal((800, 24)).astype(np.float32), rng.standard_normal((300, 24)).astype(np.float32)


def nearest(reference, queries, exclude=None):
    """The exact searcher's nearest row and distance per query (k = 1)."""
    ids, dist = Searcher(build_flat_index(reference), SearchSettings()).search(queries, exclude=exclude)
    return ids[:, 0], dist[:, 0]


def test_nearest_equals_brute_force(data):
    reference, queries = data
    ids, dist = nearest(reference, queries)
    ref_ids, ref_dist = brute_force(reference, queries)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-6)


def test_a_sample_is_never_its_own_neighbour(data):
    reference, _ = data
    rows = np.arange(len(reference))
    ids, _ = nearest(reference, reference, exclude=rows)
    assert not np.any(ids == rows)
    np.testing.assert_array_equal(ids, brute_force(reference, reference, exclude=rows)[0])


def test_exact_duplicates_are_excluded_only_by_row(data):
    reference, _ = data
    ids, dist = nearest(reference, reference[:5])
    np.testing.assert_array_equal(ids, np.arange(5))  # without exclusion, a reference row finds itself
    assert np.all(dist == 0)


def test_ties_go_to_the_smaller_row():
    reference = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0]], dtype=np.float32)
    ids, dist = nearest(reference, np.zeros((1, 2), np.float32))
    assert ids[0] == 0 and dist[0] == pytest.approx(1.0)


def test_artifacts_equal_brute_force_and_ignore_block_size(data):
    reference, queries = data
    searcher = Searcher(build_flat_index(reference), SearchSettings())
    ref_ids, _ = brute_force(reference, queries)
    expected = queries - reference[ref_ids]
    whole = artifacts_of_block(searcher, queries)
    np.testing.assert_array_equal(whole["nn_id"], ref_ids)
    np.testing.assert_array_equal(whole["artifact"], expected)
    np.testing.assert_allclose(whole["nn_dist"], np.linalg.norm(expected, axis=1), rtol=1e-6)
    for block in (1, 7, 128, 300):
        parts = [artifacts_of_block(searcher, queries[s : s + block]) for s in range(0, 300, block)]
        np.testing.assert_array_equal(np.concatenate([p["nn_id"] for p in parts]), whole["nn_id"])
        np.testing.assert_array_equal(np.concatenate([p["artifact"] for p in parts]), whole["artifact"])


def test_search_checks_inputs(data):
    reference, queries = data
    with pytest.raises(TypeError, match="float32"):
        nearest(reference, queries.astype(np.float64))
    with pytest.raises(TypeError, match="dimension 23, the index has 24"):
        nearest(reference, queries[:, :23].copy())
    with pytest.raises(TypeError, match="2-D"):
        nearest(reference, queries[0])


@pytest.mark.parametrize("name", ALL_SETUPS)
@pytest.mark.parametrize("k", [1, 5])
def test_every_engine_finds_the_brute_force_top_k(data, name, k):
    reference, queries = data
    searcher = searcher_for(name, reference)
    ids, dist = searcher.search(queries, k)
    ref_ids, ref_dist = brute_force_top_k(reference, queries, k)
    assert ids.dtype == np.int64 and dist.dtype == np.float32 and ids.shape == dist.shape == (300, k)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5 if searcher.device == "cuda" else 1e-6)
    assert searcher.engine == (SETUPS[name][2] or "faiss-cpu")


@pytest.mark.parametrize("name", ALL_SETUPS)
def test_exclude_is_never_returned(data, name):
    reference, _ = data
    searcher = searcher_for(name, reference)
    exclude = np.arange(len(reference))
    exclude[::3] = -1  # -1: nothing excluded for that query
    ids, _ = searcher.search(reference, 2, exclude=exclude)
    expected = brute_force_top_k(reference, reference, 3)[0]  # the row itself first, where not excluded
    np.testing.assert_array_equal(ids[::3], expected[::3, :2])
    keep = exclude != -1
    np.testing.assert_array_equal(ids[keep], expected[keep][:, 1:])


@pytest.mark.parametrize("name", ALL_SETUPS)
def test_ties_go_to_the_smaller_row_in_every_engine(name):
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((400, 8)).astype(np.float32)
    reference += 20 * np.sign(reference)  # every row far from the origin ...
    tied = [397, 12, 250, 3]  # ... but four, at distance exactly 1
    reference[tied] = np.eye(8, dtype=np.float32)[:4] * [[1], [-1], [1], [-1]]
    searcher = searcher_for(name, reference)
    ids, dist = searcher.search(np.zeros((2, 8), np.float32), 4)
    np.testing.assert_array_equal(ids, [sorted(tied)] * 2)
    np.testing.assert_array_equal(dist, np.ones((2, 4), np.float32))


@pytest.mark.parametrize("name", CPU_SETUPS)
def test_query_block_and_stream_blocks_do_not_change_results(data, name):
    reference, queries = data
    expected = searcher_for(name, reference).search(queries, 3)
    for query_block in (1, 7, 300):
        searcher = searcher_for(name, reference, query_block=query_block)
        np.testing.assert_array_equal(searcher.search(queries, 3)[0], expected[0])
        for block in (1, 64, 300):
            parts = list(searcher.stream((queries[s : s + block] for s in range(0, 300, block)), 3))
            np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), expected[0])
            np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), expected[1])


@pytest.mark.parametrize("name", ["flat-faiss-cpu", "ivf-faiss-cpu", "hnsw-faiss-cpu"])
def test_save_and_load_round_trip(data, tmp_path, name):
    reference, queries = data
    settings = SETUPS[name][0]
    index = build_index(reference, settings)
    save_index(index, tmp_path / "index.faiss")
    loaded = load_index(tmp_path / "index.faiss")
    assert index_kind(loaded) == index_kind(index) == name.split("-")[0]
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]  # the temporary file was renamed
    for a, b in zip(Searcher(index, settings).search(queries, 2), Searcher(loaded, settings).search(queries, 2)):
        np.testing.assert_array_equal(a, b)


def test_ivf_training_is_seeded(data):
    reference, _ = data
    settings = SearchSettings(backend="ivf", nlist=8)
    first, again = (faiss.serialize_index(build_index(reference, settings, seed=5)) for _ in range(2))
    np.testing.assert_array_equal(first, again)


def test_ivf_list_count():
    assert ivf_lists(10_000) == 256  # 4 sqrt(N) = 400, but at most N // 39 lists
    assert ivf_lists(1_000_000) == 4000
    assert ivf_lists(10) == 1 and ivf_lists(100, nlist=7) == 7
    with pytest.raises(InputError, match="search.nlist = 101 lists for 100 reference rows"):
        ivf_lists(100, nlist=101)


def test_vectors_are_the_reference_rows(data):
    reference, _ = data
    ids = np.array([[3, 0], [799, 3]])
    for name in ("flat-faiss-cpu", "ivf-faiss-cpu", "hnsw-faiss-cpu"):
        rows = searcher_for(name, reference).vectors(ids)
        assert rows.shape == (2, 2, 24) and rows.dtype == np.float32
        np.testing.assert_array_equal(rows, reference[ids])
    index = build_flat_index(reference)
    view = stored_vectors(index)
    assert not view.flags.owndata  # the index's own storage, not a second copy
    np.testing.assert_array_equal(view, reference)
    with pytest.raises(InputError, match=r"row ids must lie in 0..799"):
        Searcher(index, SearchSettings()).vectors(np.array([800]))


def test_recall_at_1_on_hand_made_arrays():
    true_ids, true_dist = np.array([0, 1, 5, 4, 7]), np.array([1.0, 2.0, 2.5, 4.0, 0.0])
    found_ids = np.array([0, 1, 2, 3, 7])
    found_dist = np.array([1.0, 2.0, 3.0, 4.0 * (1 + 1e-7), 0.0])  # query 3: another row at the same distance
    assert recall_at_1(found_ids, found_dist, true_ids, true_dist) == pytest.approx(0.8)
    found_dist[3] = 4.0 * (1 + 1e-5)  # no longer a tie
    assert recall_at_1(found_ids, found_dist, true_ids, true_dist) == pytest.approx(0.6)
    two = np.stack([found_ids, found_ids + 1], 1), np.stack([found_dist, found_dist + 1], 1)
    assert recall_at_1(*two, np.stack([true_ids, true_ids], 1), np.stack([true_dist, true_dist], 1)) == 0.6
    with pytest.raises(InputError, match=r"n rows, \(n,\) or \(n, k\); got shapes \[\(5,\), \(5,\), \(3,\), \(5,\)\]"):
        recall_at_1(found_ids, found_dist, true_ids[:3], true_dist)


def test_recall_below_one_is_measured_on_clustered_data():
    rng = np.random.default_rng(0)
    centers = 4 * rng.standard_normal((16, 16))
    reference = (np.repeat(centers, 40, axis=0) + rng.standard_normal((640, 16))).astype(np.float32)
    queries = (centers[rng.integers(0, 16, 400)] + 2 * rng.standard_normal((400, 16))).astype(np.float32)
    settings = SearchSettings(backend="ivf", nlist=16, nprobe=1, candidates=0)
    searcher = Searcher(build_index(reference, settings), settings)
    ids, dist = searcher.search(queries)
    expected = recall_at_1(ids, dist, *brute_force(reference, queries))
    measured = measure_recall(searcher, queries, sample=len(queries))
    assert measured == {"recall_at_1": expected, "n_queries": 400}
    assert 0.3 < expected < 1
    assert measure_recall(searcher, queries, sample=50, seed=1)["n_queries"] == 50
    every_list = SearchSettings(backend="ivf", nlist=16, nprobe=16)
    assert measure_recall(Searcher(searcher.index, every_list), queries, sample=400)["recall_at_1"] == 1.0


def test_too_few_candidates_from_an_approximate_index_is_an_error(data):
    reference, queries = data
    searcher = searcher_for("ivf-faiss-cpu", reference, nprobe=1)
    with pytest.raises(InputError, match=r"fewer than 300 candidates .*raise search.nprobe"):
        searcher.search(queries, 300)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("backend", "annoy", r"search.backend = 'annoy' is not one of \('exact', 'ivf', 'hnsw'\)"),
        ("candidates", -1, r"search.candidates = -1 is not valid; it must be an integer >= 0"),
        ("nlist", 2.5, r"search.nlist = 2.5 is not valid; it must be an integer >= 0"),
        ("nprobe", 0, r"search.nprobe = 0 .* >= 1"),
        ("hnsw_m", 1, r"search.hnsw_m = 1 .* >= 2"),
        ("ef_construction", 0, r"search.ef_construction = 0 .* >= 1"),
        ("ef_search", True, r"search.ef_search = True .* >= 1"),
        ("recall_queries", 0, r"search.recall_queries = 0 .* >= 1"),
        ("query_block", 0, r"search.query_block = 0 .* >= 1"),
    ],
)
def test_bad_settings_name_the_key(key, value, match):
    with pytest.raises(InputError, match=match):
        SearchSettings(**{key: value})


def test_settings_keep_what_changes_results():
    assert SearchSettings().settings() == {"backend": "exact", "candidates": 4}
    ivf = SearchSettings(backend="ivf", nprobe=4, query_block=10).settings()
    assert ivf == {"backend": "ivf", "candidates": 4, "nlist": 0, "nprobe": 4}
    hnsw = SearchSettings(backend="hnsw").settings()
    assert set(hnsw) == {"backend", "candidates", "hnsw_m", "ef_construction", "ef_search"}
    assert json.loads(json.dumps(hnsw)) == hnsw


def test_searcher_checks_its_inputs(data):
    reference, queries = data
    searcher = Searcher(build_flat_index(reference), SearchSettings())
    with pytest.raises(InputError, match=r"k = 801 neighbours asked, but only 1..800"):
        searcher.search(queries, 801)
    with pytest.raises(InputError, match=r"k = 800 .* only 1..799 are available \(one row a query is excluded\)"):
        searcher.search(queries, 800, exclude=np.zeros(300, np.int64))
    with pytest.raises(InputError, match=r"k = 0"):
        searcher.search(queries, 0)
    with pytest.raises(InputError, match=r"one integer row per query, shape \(300,\)"):
        searcher.search(queries, exclude=np.zeros(299, np.int64))
    with pytest.raises(InputError, match=r"rows outside -1..799"):
        searcher.search(queries, exclude=np.full(300, 800))
    with pytest.raises(TypeError, match="dimension 23, the index has 24"):
        searcher.search(queries[:, :23].copy())
    one = Searcher(build_flat_index(reference[:1]), SearchSettings())
    with pytest.raises(InputError, match="at least 2 reference rows; the index has 1"):
        one.search(queries, exclude=np.zeros(300, np.int64))
    with pytest.raises(InputError, match=r"device = 'tpu' is not one of \('cpu', 'cuda'\)"):
        Searcher(searcher.index, SearchSettings(), "tpu")
    with pytest.raises(InputError, match=r"engine = 'torch-cuda' does not run on device 'cpu'"):
        Searcher(searcher.index, SearchSettings(), engine="torch-cuda")
    hnsw = SearchSettings(backend="hnsw")
    with pytest.raises(InputError, match=r"search.backend = 'hnsw' but the index is flat; .* with backend 'exact'"):
        Searcher(searcher.index, hnsw)
    with pytest.raises(InputError, match=r"engine 'torch-cpu' searches flat indexes only; this index is hnsw"):
        Searcher(build_index(reference, hnsw), hnsw, engine="torch-cpu")


@pytest.mark.skipif(torch.cuda.is_available() or faiss_gpu_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_an_error(data):
    with pytest.raises(InputError, match="no CUDA device is visible; use device='cpu'"):
        Searcher(build_flat_index(data[0]), SearchSettings(), "cuda")
