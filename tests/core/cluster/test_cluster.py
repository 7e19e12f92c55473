"""The cluster path of the heavy steps gives the local path's bits, and fails cleanly."""

import dataclasses
import shutil

import numpy as np
import pytest
import zarr

from manifpt_core import steps
from manifpt_core.cluster import ClusterSettings, connect
from manifpt_core.cluster.blockwise import split_rows
from manifpt_core.cluster.tasks import merge, shard_candidates
from manifpt_core.errors import InputError
from manifpt_core.search import Searcher, SearchSettings, build_flat_index
from manifpt_core.store import open_array, remove_paths
from manifpt_core.store.atomic import leftovers_under

SOURCES = ("real", "alpha", "beta")
ARRAYS = ("nn_id", "nn_dist", "artifact", "knn_ids", "knn_artifact", "knn_dist", "query_row")


def _leftovers(folder):
    return [p.name for p in leftovers_under(folder)]


@pytest.mark.parametrize("n_shards", [1, 2, 3, 5])
def test_sharded_merge_equals_local_search_with_ties(n_shards):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 24)).astype(np.float32)
    reference = np.concatenate([base, base[:15], base[5:30]])  # exact ties across shards, to the smaller row
    queries = np.concatenate([rng.normal(size=(30, 24)).astype(np.float32), base[:10] + np.float32(1e-3)])
    settings, k = SearchSettings(), 6
    local = Searcher(build_flat_index(reference), settings).search(queries, k)
    parts = [shard_candidates(Searcher(build_flat_index(np.ascontiguousarray(reference[a:b])), settings),
                              queries, k, a) for a, b in split_rows(len(reference), n_shards)]
    ids, dist = merge(parts, k)
    np.testing.assert_array_equal(ids, local[0])
    np.testing.assert_array_equal(dist, local[1])


def test_split_rows_covers_every_row_once():
    assert split_rows(10, 3) == ((0, 3), (3, 7), (7, 10))
    assert split_rows(2, 5) == ((0, 1), (1, 2))
    assert split_rows(7, 1) == ((0, 7),)


@pytest.mark.slow
def test_cluster_embeddings_neighbours_and_artifacts_are_the_local_bits(cluster, store_copy, query_store):
    """Every space (pixel and learned) and source, recomputed on 2 workers with 3 reference shards."""
    store, original = store_copy
    settings = dataclasses.replace(query_store.settings, cluster=ClusterSettings(workers=2, shards=3))
    for space in settings.spaces:
        shutil.rmtree(store.paths.embeddings(space, "real").parent)
        shutil.rmtree(store.paths.artifacts(space, "real").parent)
    for space in settings.spaces:
        for source in SOURCES:
            outcome = steps.embed_source(store, settings, space, source, cluster=cluster)
            assert not outcome.reused and outcome.summary.device.endswith("on dask")
            assert outcome.content_hash == original.source(source).embeddings_record(space).content_hash
            np.testing.assert_array_equal(open_array(store.paths.embeddings(space, source))[:],
                                          open_array(original.paths.embeddings(space, source))[:])
        for source in SOURCES:
            outcome = steps.materialize_artifacts(store, settings, space, source, cluster=cluster)
            assert "3 shards on dask" in outcome.summary.search_engine
            expected = original.source(source).artifacts(space)
            assert outcome.content_hash == expected.record.content_hash
            assert outcome.summary.mean_nn_dist == expected.record.summary.mean_nn_dist
            for name in ARRAYS:
                np.testing.assert_array_equal(store.source(source).artifacts(space).array(name)[:],
                                              expected.array(name)[:], err_msg=f"{name} of {source} in {space}")


@pytest.mark.slow
@pytest.mark.parametrize("kinds", [("nearest", "knn"), ("nearest",)])
def test_cluster_derived_artifacts_match_local_derived(cluster, store_copy, query_store, kinds):
    store, _ = store_copy
    settings = query_store.settings
    local = dataclasses.replace(settings, derive_above_gb=0.0,
                                artifacts=dataclasses.replace(settings.artifacts, kinds=kinds))
    remote = dataclasses.replace(local, cluster=ClusterSettings(workers=2, shards=2))
    expected = steps.materialize_artifacts(store, local, "rgb", "alpha")
    remove_paths([store.paths.artifacts("rgb", "alpha")])
    outcome = steps.materialize_artifacts(store, remote, "rgb", "alpha", cluster=cluster)
    assert outcome.summary.derived and outcome.content_hash == expected.content_hash


def test_unreachable_scheduler_names_the_setting(free_port):
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(InputError, match=r"cluster\.address = 'tcp://127\.0\.0\.1:\d+'.*dask scheduler"):
        connect(ClusterSettings(address=address, timeout_s=1.0))


@pytest.mark.parametrize("data, message", [
    ({"address": "tcp://h:1", "workers": 2}, "both set"),
    ({"address": "not an address"}, "not a scheduler address"),
])
def test_cluster_settings_are_checked(data, message):
    with pytest.raises(InputError, match=message):
        ClusterSettings(**data)


def test_unreachable_scheduler_in_dagster_fails_the_step_and_writes_nothing(store_copy, query_store, free_port):
    import dagster as dg

    from assets.resources import DaskResource, ManifptResource
    from pipelines.definitions import build_definitions

    store, _ = store_copy
    target = store.paths.embeddings("rgb", "real")
    remove_paths([target])
    home = store.root.parent
    (home / "store").exists() or store.root.rename(home / "store")
    resource = ManifptResource(home=str(home), profile="tiny", config_file=str(query_store.config), device="cpu")
    dask = DaskResource(address=f"tcp://127.0.0.1:{free_port()}")
    defs = build_definitions(resource, dask)
    key = dg.AssetKey([query_store.settings.dataset, "real_embeddings"])
    result = dg.materialize(defs.assets, selection=[key], partition_key="rgb", resources=defs.resources,
                            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "cluster.address" in failure.step_failure_data.error.to_string()
    assert not target.exists() and _leftovers(target.parent) == []


@pytest.mark.slow
def test_a_failed_block_fails_the_step_and_leaves_no_half_store(cluster, store_copy, query_store):
    store, _ = store_copy
    target = store.paths.embeddings("rgb", "alpha")
    remove_paths([target])
    chunk = next(p for p in sorted(store.paths.images("alpha").rglob("*")) if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:5])  # a truncated chunk: its block cannot be decoded
    with pytest.raises(Exception, match=r"(?i)decod|compress|codec|blosc|zstd|buffer|size|damaged"):
        steps.embed_source(store, query_store.settings, "rgb", "alpha", cluster=cluster)
    assert not target.exists() and _leftovers(target.parent) == []
    assert zarr.open_array(store=str(store.paths.images("beta")), mode="r").shape[0] == 60  # the rest untouched
