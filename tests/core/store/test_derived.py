"""Artifacts derived on read from the images equal the stored ones, bit for bit, however they are read."""

import dataclasses
import shutil

import numpy as np
import pytest

from manifpt_core import steps
from manifpt_core.names import Method
from manifpt_core.query import lazy_array
from manifpt_core.steps.attribute import source_inputs
from manifpt_core.store import Store
from manifpt_core.store.derived import DerivedArtifacts, DerivedEmbeddings


@pytest.fixture(scope="module")
def derived(query_store, tmp_path_factory):
    """A copy of the query store whose rgb and freq embeddings and artifacts are derived (threshold 0 GB)."""
    root = tmp_path_factory.mktemp("derived") / "store"
    shutil.copytree(query_store.store.root, root, symlinks=True)
    store = Store(root, query_store.settings.dataset)
    settings = query_store.settings
    settings = dataclasses.replace(settings, derive_above_gb=0.0)
    outcomes = {}
    for space in ("rgb", "freq"):
        for source in ("real", "alpha", "beta"):
            outcomes[("embed", space, source)] = steps.embed_source(store, settings, space, source)
        outcomes[("index", space)] = steps.build_index(store, settings, space)
        for source in ("real", "alpha", "beta"):
            outcomes[(space, source)] = steps.materialize_artifacts(store, settings, space, source)
    return store, outcomes


@pytest.mark.parametrize("space", ["rgb", "freq"])
def test_derived_embeddings_are_the_stored_bits_and_index_the_same_reference(derived, query_store, space):
    store, outcomes = derived
    for source in ("real", "alpha", "beta"):
        outcome = outcomes[("embed", space, source)]
        assert not outcome.reused and outcome.summary.derived
        view, stored = store.source(source).embeddings(space), query_store.store.source(source).embeddings(space)
        assert isinstance(view, DerivedEmbeddings) and view.shape == stored.shape
        assert not any(p.name == "c" for p in store.paths.embeddings(space, source).iterdir())  # no chunk stored
        np.testing.assert_array_equal(view[:], stored[:])
        np.testing.assert_array_equal(view[[9, 2, 2]], stored[[9, 2, 2]])
        np.testing.assert_array_equal(view.get_orthogonal_selection(([1, 4], slice(3, 7))),
                                      stored.get_orthogonal_selection(([1, 4], slice(3, 7))))
    assert outcomes[("index", space)].content_hash == query_store.store.index(space).content_hash
    lazy = lazy_array(store, "real", "embeddings", space=space)
    np.testing.assert_array_equal(lazy[5:40].compute(), query_store.store.real.embeddings(space)[5:40])


@pytest.mark.parametrize("space", ["rgb", "freq"])
@pytest.mark.parametrize("source", ["real", "alpha", "beta"])
def test_derived_artifacts_are_the_stored_bits(derived, query_store, space, source):
    store, outcomes = derived
    outcome = outcomes[(space, source)]
    assert not outcome.reused and outcome.summary.derived
    assert outcome.fingerprint != query_store.store.source(source).artifacts(space).record.fingerprint
    mine, stored = store.source(source).artifacts(space), query_store.store.source(source).artifacts(space)
    assert not (mine.path / "artifact").exists() and not (mine.path / "knn_artifact").exists()
    for kind in ("nearest", "knn"):
        view, expected = mine.of_kind(kind), stored.of_kind(kind)[:]
        assert isinstance(view, DerivedArtifacts) and view.shape == expected.shape
        np.testing.assert_array_equal(view[:], expected)
        rows = np.array([7, 3, 3, 50, 0])
        np.testing.assert_array_equal(view[rows], expected[rows])
        np.testing.assert_array_equal(view[11], expected[11])
        np.testing.assert_array_equal(view[5:9, 2:4], expected[5:9, 2:4])
    for name in ("nn_id", "nn_dist", "knn_ids", "knn_dist", "query_row"):
        np.testing.assert_array_equal(mine.array(name)[:], stored.array(name)[:])


def test_the_attributor_and_lazy_reads_see_the_same_inputs(derived, query_store):
    store, _ = derived
    for kind in ("nearest", "knn"):
        method = Method.artifacts("freq", kind)
        x, split = source_inputs(store.source("beta"), method)
        x0, split0 = source_inputs(query_store.store.source("beta"), method)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(split, split0)
    lazy = lazy_array(store, "alpha", "artifacts", space="rgb", name="knn_artifact")
    np.testing.assert_array_equal(lazy.compute(), query_store.store.model("alpha").artifacts("rgb").of_kind("knn")[:])


def test_only_pixel_spaces_above_the_threshold_are_derived(query_store):
    s = query_store.settings
    assert not s.derives("rgb", 1000, 784, 2)  # 6 MB of two kinds, below the default 4 GB
    assert s.derives("rgb", 1_700_000, 196_608) and s.derives("freq", 1_700_000, 196_608)
    assert not s.derives("sl", 1_700_000, 2048) and not s.derives("ssl", 10**9, 2048)  # learned: always stored


def test_stored_artifacts_keep_their_fingerprint(query_store):
    """Below the threshold nothing changes: the stored artifacts are reused as they are."""
    outcome = steps.materialize_artifacts(query_store.store, query_store.settings, "rgb", "alpha")
    assert outcome.reused and not outcome.summary.derived
