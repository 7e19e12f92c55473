"""Fixtures of the cluster tests: one local Dask cluster of two worker processes, and copies of a stored dataset."""

import shutil

import pytest

from manifpt_core.cluster import ClusterSettings, open_cluster
from manifpt_core.store import Store


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes (1 thread each) for the module."""
    with open_cluster(ClusterSettings(workers=2)) as started:
        yield started


@pytest.fixture
def store_copy(query_store, tmp_path):
    """A writable copy of the query store's dataset, and the original to compare with."""
    root = tmp_path / "store"
    shutil.copytree(query_store.store.root, root, symlinks=True)
    return Store(root, query_store.settings.dataset), query_store.store
