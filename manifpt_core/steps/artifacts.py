"""Step 4, artifact materialization: nearest reference id, distance and artifact for every query sample.

Queries are all rows of a generated source, and the real *class* rows (never
the reference rows) of the real source. Each artifact kind of the settings is
written: ``nearest`` (x minus its nearest reference point: ``artifact``,
``nn_id``, ``nn_dist``) and ``knn`` (x minus its projection onto the span of
its k nearest reference points: ``knn_artifact``, ``knn_ids``, ``knn_dist``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from manifpt_core.artifacts import artifacts_of_block
from manifpt_core.config import Settings
from manifpt_core.steps.index import open_searcher, recall_of
from manifpt_core.store import (
    Outcome,
    Store,
    combine_hashes,
    create_rows,
    prefetch,
    run_cached,
)
from manifpt_core.store.arrays import aligned_block_rows
from manifpt_core.store.records import ArtifactsSummary

ARTIFACT_VERSION = "2"


def materialize_artifacts(store: Store, settings: Settings, space: str, source_name: str) -> Outcome[ArtifactsSummary]:
    """Write ``artifacts/<space>/<source>.zarr`` with the arrays of every artifact kind, plus query_row (N,)."""
    source = store.source(source_name)
    embeddings_hash, index_hash = source.embeddings_record(space).content_hash, store.index(space).content_hash

    def compute(tmp: Path, fp: str) -> tuple[str, ArtifactsSummary]:
        first, n = source.summary.query_start, source.summary.n_queries
        queries = source.embeddings(space)
        dim, k, a = queries.shape[1], settings.artifacts.neighbours, settings.artifacts
        searcher = open_searcher(store, settings, space)
        shapes = {"artifact": ((n, dim), np.float32), "nn_id": ((n,), np.int64), "nn_dist": ((n,), np.float32),
                  "knn_artifact": ((n, dim), np.float32), "knn_ids": ((n, k), np.int64),
                  "knn_dist": ((n,), np.float32), "query_row": ((n,), np.int64)}
        step = aligned_block_rows(settings.block_rows, settings.chunk_rows)
        starts = range(0, n, step)
        blocks = prefetch(np.ascontiguousarray(queries[first + s : first + min(s + step, n)], dtype=np.float32)
                          for s in starts)
        group = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
        writers, dist_sum, knn_sum = {}, 0.0, 0.0
        for s, block in tqdm(zip(starts, blocks), total=len(starts), desc=f"artifacts {source.name} in {space}",
                             unit="block", leave=False):
            arrays = artifacts_of_block(searcher, block, a.kinds, a.knn_k, a.knn_reg)
            arrays["query_row"] = np.arange(first + s, first + s + len(block), dtype=np.int64)
            for name, values in arrays.items():
                if name not in writers:
                    shape, dtype = shapes[name]
                    writers[name] = create_rows(group, name, shape, dtype, settings.chunk_rows)
                writers[name].write(values)
            dist_sum += float(arrays["nn_dist"].astype(np.float64).sum())
            knn_sum += float(arrays["knn_dist"].sum()) if "knn_dist" in arrays else 0.0
        knn = "knn" in a.kinds
        summary = ArtifactsSummary(n_queries=n, dim=dim, n_reference=searcher.ntotal, kinds=list(a.kinds),
                                   mean_nn_dist=dist_sum / max(n, 1), search_engine=searcher.engine,
                                   index_kind=searcher.kind, recall=recall_of(searcher, settings, space, source),
                                   knn_k=k if knn else None, mean_knn_dist=knn_sum / max(n, 1) if knn else None)
        return combine_hashes({name: w.content_hash() for name, w in writers.items()}), summary

    return run_cached(store.paths.artifacts(space, source.name), "artifacts", ARTIFACT_VERSION,
                      {"embeddings": embeddings_hash, "index": index_hash},
                      {"chunk_rows": settings.chunk_rows, "search": settings.search.settings(),
                       "artifacts": settings.artifacts.settings()}, compute, ArtifactsSummary)
