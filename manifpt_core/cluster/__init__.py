"""Beyond one machine: the heavy blockwise work of the embedding and artifact steps on a Dask distributed cluster.

``ClusterSettings`` (keys ``cluster.*``) say where: this process (default), a ``LocalCluster`` of N worker
processes, or a running scheduler. ``open_cluster`` / ``shared_cluster`` give a :class:`Cluster`, which the
steps accept; the results are the same bits as the local path's (tests/core/cluster).

The client side is imported on first use, so loading settings does not import Dask distributed.
"""

from typing import Any

from manifpt_core.cluster.settings import ClusterSettings

_CLIENT = ("Cluster", "connect", "open_cluster", "shared_cluster")


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        from manifpt_core.cluster import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Cluster", "ClusterSettings", "connect", "open_cluster", "shared_cluster"]
