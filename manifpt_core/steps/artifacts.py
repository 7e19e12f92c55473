"""Step 4, artifact materialization: nearest reference id, distance and artifact for every query sample.

Queries are all rows of a generated source, and the real *class* rows (never
the reference rows) of the real source. Each artifact kind of the settings is
written: ``nearest`` (x minus its nearest reference point: ``artifact``,
``nn_id``, ``nn_dist``) and ``knn`` (x minus its projection onto the span of
its k nearest reference points: ``knn_artifact``, ``knn_ids``, ``knn_dist``).

In a pixel-like space whose artifacts would exceed ``derive_above_gb``, the
(n, D) arrays are not written: the neighbours (and the projection weights ``knn_coef``)
determine them, and the store derives them on read (``manifpt_core.store.derived``).

Given a Dask cluster, exact search is sharded over the reference set: every query block
is searched in every shard on the shard's worker, the per-shard top-k are merged
exactly as the local re-rank would rank them, and the block's artifacts are written by a
worker (``manifpt_core.cluster``). The same bits as the local path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from tqdm import tqdm

from manifpt_core.artifacts import artifacts_of_block
from manifpt_core.config import ArtifactSettings, Settings
from manifpt_core.search import Searcher
from manifpt_core.steps.index import open_searcher, recall_of
from manifpt_core.store import (
    Outcome,
    RowWriter,
    Store,
    combine_hashes,
    create_rows,
    prefetch,
    run_cached,
)
from manifpt_core.store.arrays import aligned_block_rows, hash_rows
from manifpt_core.store.records import ArtifactsSummary

if TYPE_CHECKING:
    from manifpt_core.cluster import Cluster

logger = logging.getLogger(__name__)

ARTIFACT_VERSION = "2"


def materialize_artifacts(store: Store, settings: Settings, space: str, source_name: str,
                          cluster: Cluster | None = None) -> Outcome[ArtifactsSummary]:
    """Write ``artifacts/<space>/<source>.zarr`` with the arrays of every artifact kind, plus query_row (N,)."""
    source = store.source(source_name)
    embeddings_hash, index_hash = source.embeddings_record(space).content_hash, store.index(space).content_hash
    n, dim = source.summary.n_queries, source.embeddings_record(space).summary.dim
    a = settings.artifacts
    derived = settings.derives(space, n, dim, len(a.kinds))
    if cluster is not None and settings.search.backend != "exact":
        logger.warning("the cluster shards exact search only; %s search of %s in %s runs in this process",
                       settings.search.backend, source_name, space)
        cluster = None

    def compute(tmp: Path, fp: str) -> tuple[str, ArtifactsSummary]:
        first, k = source.summary.query_start, a.neighbours
        shapes = {"artifact": ((n, dim), np.float32), "nn_id": ((n,), np.int64), "nn_dist": ((n,), np.float32),
                  "knn_artifact": ((n, dim), np.float32), "knn_ids": ((n, k), np.int64),
                  "knn_coef": ((n, k - 1), np.float64), "knn_dist": ((n,), np.float32), "query_row": ((n,), np.int64)}
        step = aligned_block_rows(settings.block_rows, settings.chunk_rows)
        group = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
        writers = {name: create_rows(group, name, *shapes[name], settings.chunk_rows) for name in array_names(a, derived)}
        if cluster is None:
            searcher = open_searcher(store, settings, space)
            engine, kind, n_reference = searcher.engine, searcher.kind, searcher.ntotal
            sums = _local_blocks(searcher, source.embeddings(space), first, n, step, a, derived, writers,
                                 f"artifacts {source.name} in {space}")
            content_hash = combine_hashes({name: w.content_hash() for name, w in writers.items()})
            recall = recall_of(searcher, settings, space, source)
        else:
            from manifpt_core.cluster.blockwise import artifact_blocks, split_rows
            from manifpt_core.cluster.tasks import ArtifactJob

            n_reference, kind, recall = store.real.n_reference, "flat", None
            shards = split_rows(n_reference, settings.cluster.shards or len(cluster.workers))
            job = ArtifactJob(str(store.root), store.dataset, space, index_hash, settings.search, settings.device,
                              source.name, first, shards, k, a.kinds, a.knn_reg, derived, str(tmp))
            sums = artifact_blocks(cluster, job, n, step)
            engine = f"exact in {len(shards)} shards on dask"
            content_hash = combine_hashes({name: hash_rows(w.array, step) for name, w in writers.items()})
        dist_sum, knn_sum = sum(s[0] for s in sums), sum(s[1] for s in sums)
        knn = "knn" in a.kinds
        summary = ArtifactsSummary(n_queries=n, dim=dim, n_reference=n_reference, kinds=list(a.kinds),
                                   mean_nn_dist=dist_sum / max(n, 1), search_engine=engine, index_kind=kind,
                                   recall=recall, knn_k=k if knn else None,
                                   mean_knn_dist=knn_sum / max(n, 1) if knn else None, derived=derived)
        return content_hash, summary

    return run_cached(store.paths.artifacts(space, source.name), "artifacts", ARTIFACT_VERSION,
                      {"embeddings": embeddings_hash, "index": index_hash},
                      {"chunk_rows": settings.chunk_rows, "search": settings.search.settings(),
                       "artifacts": settings.artifacts.settings(), **({"derived": True} if derived else {})},
                      compute, ArtifactsSummary)


def array_names(a: ArtifactSettings, derived: bool) -> list[str]:
    """The arrays an artifact store holds for the settings' kinds (derived: the neighbours, not the artifacts)."""
    names = ["nn_id", "nn_dist", "query_row"]
    if "nearest" in a.kinds and not derived:
        names.append("artifact")
    if "knn" in a.kinds:
        names += ["knn_ids", "knn_dist", "knn_coef" if derived else "knn_artifact"]
    return names


def _local_blocks(searcher: Searcher, queries: zarr.Array, first: int, n: int, step: int, a: ArtifactSettings,
                  derived: bool, writers: dict[str, RowWriter], desc: str) -> list[tuple[float, float]]:
    """Search and write every block in this process; returns each block's sums of nn_dist and knn_dist."""
    starts = range(0, n, step)
    blocks = prefetch(np.ascontiguousarray(queries[first + s : first + min(s + step, n)], dtype=np.float32)
                      for s in starts)
    sums = []
    for s, block in tqdm(zip(starts, blocks), total=len(starts), desc=desc, unit="block", leave=False):
        arrays = artifacts_of_block(searcher, block, a.kinds, a.knn_k, a.knn_reg, derived)
        arrays["query_row"] = np.arange(first + s, first + s + len(block), dtype=np.int64)
        for name, values in arrays.items():
            writers[name].write(values)
        sums.append((float(arrays["nn_dist"].astype(np.float64).sum()),
                     float(arrays["knn_dist"].sum()) if "knn_dist" in arrays else 0.0))
    return sums
