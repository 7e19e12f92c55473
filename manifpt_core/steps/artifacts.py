"""Step 4, artifact materialization: nearest reference id, distance and artifact for every query sample.

Queries are all rows of a generated source, and the real *class* rows (never
the reference rows) of the real source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from manifpt_core.artifacts import stream_artifacts
from manifpt_core.config import Settings
from manifpt_core.steps.cache import Outcome, require_record, run_cached
from manifpt_core.steps.index import load_index, reference_vectors
from manifpt_core.store import Store, combine_hashes, create_rows, open_array
from manifpt_core.store.arrays import aligned_block_rows

ARTIFACT_VERSION = "1"


def query_rows(store: Store, source: str) -> tuple[int, int]:
    """``(first_row, n_rows)`` of a source's query samples in its embedding store."""
    images = require_record(store.images(source), f"the images of {source!r} (ingestion)")
    n = images["summary"]["n_samples"]
    if source == "real":
        n_ref = images["summary"]["n_reference"]
        return n_ref, n - n_ref
    return 0, n


def materialize_artifacts(store: Store, settings: Settings, space: str, source: str) -> Outcome:
    """Write ``artifacts/<space>/<source>.zarr``: artifact (N, D), nn_id (N,), nn_dist (N,), query_row (N,)."""
    emb = require_record(store.embeddings(space, source), f"the {source!r} embeddings in {space!r}")
    index_record = require_record(store.index(space), f"the reference index in {space!r}")

    def compute(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
        first, n = query_rows(store, source)
        queries = open_array(store.embeddings(space, source))
        dim = queries.shape[1]
        reference = reference_vectors(store, space)
        index = load_index(store, space)
        group = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
        writers = {
            "artifact": create_rows(group, "artifact", (n, dim), np.float32, settings.chunk_rows),
            "nn_id": create_rows(group, "nn_id", (n,), np.int64, settings.chunk_rows),
            "nn_dist": create_rows(group, "nn_dist", (n,), np.float32, settings.chunk_rows),
            "query_row": create_rows(group, "query_row", (n,), np.int64, settings.chunk_rows),
        }
        step = aligned_block_rows(settings.block_rows, settings.chunk_rows)
        starts = range(0, n, step)
        blocks = (queries[first + s : first + min(s + step, n)] for s in starts)
        dist_sum, dist_max = 0.0, 0.0
        progress = tqdm(zip(starts, stream_artifacts(index, reference, blocks)), total=len(starts),
                        desc=f"artifacts {source} in {space}", unit="block", leave=False)
        for s, (nn_id, nn_dist, artifact) in progress:
            writers["artifact"].write(artifact)
            writers["nn_id"].write(nn_id)
            writers["nn_dist"].write(nn_dist)
            writers["query_row"].write(np.arange(first + s, first + s + len(nn_id), dtype=np.int64))
            dist_sum += float(nn_dist.astype(np.float64).sum())
            dist_max = max(dist_max, float(nn_dist.max()))
        content_hash = combine_hashes({name: w.content_hash() for name, w in writers.items()})
        return content_hash, {"n_queries": n, "dim": dim, "mean_nn_dist": dist_sum / max(n, 1),
                              "max_nn_dist": dist_max, "n_reference": index.ntotal}

    return run_cached(store.artifacts(space, source), "artifacts", ARTIFACT_VERSION,
                      {"embeddings": emb["content_hash"], "index": index_record["content_hash"]},
                      {"chunk_rows": settings.chunk_rows, "search": "exact_rerank"}, compute)
