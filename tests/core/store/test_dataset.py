"""The typed store API over a small folder benchmark: views agree with the raw arrays and brute force, records
read back typed, and `real` is never a model (the real store is untouched by trying)."""

import numpy as np
import pytest

from manifpt_core import steps
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError, StoreError
from manifpt_core.names import Method
from manifpt_core.store import Store, open_array, read_manifest
from manifpt_core.store.records import ArtifactsSummary, ImagesSummary

MODELS = ["alpha", "beta"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory, benchmark_factory, rgb_store_builder):
    """Ingestion, rgb embeddings, index and artifacts of a folder benchmark (no training: seconds)."""
    root = benchmark_factory(tmp_path_factory.mktemp("bench"))
    settings = settings_from_dict({"profile": "test", "dataset": "bench", "source": {"kind": "folder", "path": str(root)},
                                   "n_reference": 120, "n_real_class": 60, "spaces": ["rgb"], "chunk_rows": 16,
                                   "block_rows": 32, "device": "cpu", "artifacts": {"kinds": ["nearest", "knn"],
                                                                                     "knn_k": 4}})
    store = Store(tmp_path_factory.mktemp("store"), "bench")
    rgb_store_builder(store, settings, MODELS)
    return store, settings


def test_real_view_splits_reference_rows_from_query_rows(stored):
    store, _ = stored
    real = store.real
    assert isinstance(real.summary, ImagesSummary) and real.n_reference == 120
    np.testing.assert_array_equal(real.query_rows(), np.arange(120, 180))
    everything = open_array(store.paths.images("real"))[:]
    np.testing.assert_array_equal(real.reference_images(), everything[:120])
    np.testing.assert_array_equal(real.query_images(), everything[120:])
    splits = read_manifest(store.paths.source_manifest("real"), ["split"]).column("split").to_pylist()
    assert list(real.splits(real.query_rows())) == splits[120:]


def test_model_view_has_every_row_as_query_and_a_pyarrow_manifest(stored):
    store, _ = stored
    alpha = store.model("alpha")
    assert alpha.summary.n_reference == 0 and alpha.summary.query_start == 0
    np.testing.assert_array_equal(alpha.query_rows(), np.arange(alpha.summary.n_samples))
    manifest = alpha.manifest()
    assert manifest.column("source").to_pylist() == ["alpha"] * alpha.summary.n_samples
    assert alpha.count("test") == manifest.column("split").to_pylist().count("test") > 0
    assert store.models() == MODELS


def test_artifacts_view_matches_a_brute_force_nearest_reference(stored):
    store, _ = stored
    reference = store.real.reference_embeddings("rgb").astype(np.float64)
    for name in ["real", *MODELS]:
        source = store.source(name)
        art = source.artifacts("rgb")
        assert isinstance(art.record.summary, ArtifactsSummary)
        rows = art.query_row[:]
        np.testing.assert_array_equal(rows, source.query_rows())
        queries = source.embeddings("rgb")[:][rows].astype(np.float64)
        distances = ((queries[:, None, :] - reference[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(art.nn_id[:], distances.argmin(axis=1))
        np.testing.assert_allclose(art.of_kind("nearest")[:], queries - reference[art.nn_id[:]], atol=1e-5)
        assert art.of_kind("knn").shape == art.of_kind("nearest").shape


def test_records_read_back_typed_and_missing_outputs_name_their_step(stored):
    store, _ = stored
    assert store.index("rgb").summary.n == 120
    assert store.space("rgb").summary.encoder is None
    assert store.generator("alpha").summary.kind == "folder"
    with pytest.raises(StoreError, match="materialize"):
        store.attributor(Method.artifacts("rgb"))
    with pytest.raises(InputError, match="unknown artifact kind"):
        store.model("alpha").artifacts("rgb").of_kind("cubic")


def test_real_is_refused_as_a_model_and_the_real_store_is_untouched(stored):
    store, settings = stored
    before = {p: p.stat().st_mtime_ns for p in store.paths.base.joinpath("images").rglob("*")}
    record = store.real.record
    with pytest.raises(InputError, match="reserved for the real images"):
        steps.ingest_generated(store, settings, "real")
    with pytest.raises(InputError, match="reserved for the real images"):
        steps.materialize_generator(store, settings, "real")
    with pytest.raises(InputError, match="reserved"):
        store.model("real")
    assert {p: p.stat().st_mtime_ns for p in store.paths.base.joinpath("images").rglob("*")} == before
    assert store.real.record == record
    assert not store.paths.base.joinpath("generators", "real").exists()
