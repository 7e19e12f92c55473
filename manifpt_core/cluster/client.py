"""A Dask distributed client for the heavy steps: connected to a running scheduler or to a ``LocalCluster``.

Dagster stays the orchestrator: a step that is handed a :class:`Cluster` sends its blocks to it and commits
the result itself, exactly as the local path does. ``open_cluster`` is a context (tests, scripts);
``shared_cluster`` keeps one per process and settings, closed at exit (the Dagster resource, ``manifpt run``).
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster

from manifpt_core.cluster.settings import ClusterSettings
from manifpt_core.errors import InputError

logger = logging.getLogger(__name__)


class Cluster:
    """A connected Dask client with at least one worker. ``workers``: their addresses, sorted."""

    def __init__(self, client: Client, settings: ClusterSettings, local: LocalCluster | None = None) -> None:
        self.client, self.settings, self.local = client, settings, local

    @property
    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def describe(self) -> str:
        return f"{self.settings.describe()} ({len(self.workers)} workers)"

    def close(self) -> None:
        self.client.close()
        if self.local is not None:
            self.local.close()


def worker_environment(threads: int) -> dict[str, int]:
    """The environment of a local worker process: its threads for OpenMP, MKL and OpenBLAS (torch, FAISS, numpy).

    Dask's default also sets ``MALLOC_TRIM_THRESHOLD_=65536``, which returns freed memory to the system at once:
    with the large temporaries of an encoder's forward pass that made a worker 1.5x slower than the same thread
    in the calling process (benchmarks/bench_cluster.py), so it is left at glibc's default here. Workers of a
    running cluster take theirs from that cluster's configuration (docs/scale.md).
    """
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}


def connect(settings: ClusterSettings) -> Cluster:
    """Start or reach the cluster the settings name; a clear error naming the setting when that fails."""
    if not settings.enabled:
        raise InputError("no cluster is configured: set cluster.address or cluster.workers")
    if settings.address is None:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment(settings.threads_per_worker)}):
            local = LocalCluster(n_workers=settings.workers, threads_per_worker=settings.threads_per_worker,
                                 processes=True, dashboard_address=None, silence_logs=logging.WARNING)
        cluster = Cluster(Client(local), settings, local)
        logger.info("started %s", cluster.describe())
        return cluster
    address = settings.address.strip()
    try:
        client = Client(address, timeout=f"{settings.timeout_s}s")
    except (OSError, TimeoutError) as err:
        raise InputError(f"cluster.address = {address!r}: no Dask scheduler answered within {settings.timeout_s:g} s "
                         f"({err}). Start one there (`dask scheduler`, then `dask worker {address}` on each machine), "
                         "or remove cluster.address to compute on this machine") from None
    try:
        client.wait_for_workers(1, timeout=settings.timeout_s)
    except (OSError, TimeoutError):
        client.close()
        raise InputError(f"cluster.address = {address!r}: the scheduler answered but no worker joined within "
                         f"{settings.timeout_s:g} s; start workers with `dask worker {address}`") from None
    cluster = Cluster(client, settings)
    logger.info("connected to %s", cluster.describe())
    return cluster


@contextmanager
def open_cluster(settings: ClusterSettings) -> Iterator[Cluster | None]:
    """The cluster of the settings for the duration of the block (None when none is configured), then closed."""
    if not settings.enabled:
        yield None
        return
    cluster = connect(settings)
    try:
        yield cluster
    finally:
        cluster.close()


_SHARED: dict[ClusterSettings, Cluster] = {}


def shared_cluster(settings: ClusterSettings) -> Cluster | None:
    """One cluster per process and settings, started on first use and closed when the process exits."""
    if not settings.enabled:
        return None
    cluster = _SHARED.get(settings)
    if cluster is not None and cluster.client.status != "running":
        cluster = None
    if cluster is None:
        cluster = _SHARED[settings] = connect(settings)
    return cluster


@atexit.register
def _close_shared() -> None:
    for cluster in _SHARED.values():
        try:
            cluster.close()
        except (OSError, RuntimeError, TimeoutError) as err:  # at exit: report, never mask the exit status
            logger.warning("closing the Dask cluster at exit failed: %s", err)
    _SHARED.clear()
