"""The driver's side of the cluster path: send every block of a step to the workers and wait for all of them.

Blocks are the local path's blocks (whole chunks of the output), so no two tasks write one chunk. A failed
block fails the step only once every other task has stopped, so no worker writes into an output that is being
thrown away; the step's atomic commit then leaves nothing behind.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

from distributed import Future, as_completed, wait
from tqdm import tqdm

from manifpt_core.cluster.client import Cluster
from manifpt_core.cluster.tasks import (
    ArtifactJob,
    EmbedJob,
    embed_rows,
    merge,
    search_shard,
    shard_rows,
    write_artifacts,
)

logger = logging.getLogger(__name__)


def split_rows(n: int, parts: int) -> tuple[tuple[int, int], ...]:
    """``parts`` contiguous row ranges of sizes differing by at most one (no empty range)."""
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return tuple(itertools.pairwise(edges))


def _gather(cluster: Cluster, futures: Sequence[Future], desc: str) -> list:
    """The results of ``futures`` in their order, with a progress bar; on a failure, waits for the rest first."""
    try:
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="block", leave=False):
            future.result()
    except BaseException:
        wait(futures)  # nothing may still be writing when the caller discards the output
        raise
    return cluster.client.gather(list(futures))


def embed_blocks(cluster: Cluster, job: EmbedJob, n: int, step: int) -> None:
    """Embed rows ``0:n`` of the job's source, ``step`` rows a task."""
    futures = [cluster.client.submit(embed_rows, job, s, min(s + step, n), pure=False) for s in range(0, n, step)]
    _gather(cluster, futures, f"embed {job.source} in {job.space} on {len(cluster.workers)} workers")


def needs_rows(job: ArtifactJob) -> bool:
    """Whether writing needs the neighbours' vectors: not when only nearest ids are kept (derived, no knn)."""
    return not job.derived or "knn" in job.kinds


def artifact_blocks(cluster: Cluster, job: ArtifactJob, n: int, step: int) -> list[tuple[float, float]]:
    """Search and write the artifacts of query rows ``0:n``, ``step`` rows a block; returns each block's sums.

    Shard ``s`` is pinned to one worker, so each worker loads only its shards of the reference set.
    """
    client, workers = cluster.client, cluster.workers
    home = {s: [workers[s % len(workers)]] for s in range(len(job.shards))}
    writes = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        found = [client.submit(search_shard, job, s, start, stop, workers=home[s], allow_other_workers=False,
                               pure=False) for s in range(len(job.shards))]
        merged = client.submit(merge, found, job.k, pure=False)
        rows = [client.submit(shard_rows, job, s, merged, workers=home[s], allow_other_workers=False, pure=False)
                for s in range(len(job.shards))] if needs_rows(job) else []
        writes.append(client.submit(write_artifacts, job, start, stop, merged, rows, pure=False))
    return _gather(cluster, writes, f"artifacts {job.source} in {job.space} on {len(workers)} workers "
                                    f"({len(job.shards)} shards)")
