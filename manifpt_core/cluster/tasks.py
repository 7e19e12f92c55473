"""The work the cluster's workers do, block by block, reading their inputs from the store themselves.

Only small descriptions of the work travel through the task graph (paths, row ranges, settings); a worker
opens the store, loads what a task needs once (an encoder, its shard of the reference set) and keeps it in a
small per-process cache for the next task, and writes its rows straight into the output being built. The
arithmetic is the local path's own functions on the same blocks, so the results are the same bits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import zarr

from manifpt_core.artifacts import artifacts_from_neighbours
from manifpt_core.search import Searcher, SearchSettings, build_flat_index
from manifpt_core.search.rerank import select, squared_distances
from manifpt_core.steps.space import open_space
from manifpt_core.store import Store
from manifpt_core.torch_helpers import resolve_device

T = TypeVar("T")

CACHE_SIZE = 4  # encoders and reference shards a worker keeps between tasks
_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_LOCK = threading.Lock()

Found = tuple[np.ndarray, np.ndarray]


def cached(key: tuple, build: Callable[[], T]) -> T:
    """What ``build`` makes, built once per worker process for ``key`` (content hashes in the key keep it fresh)."""
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        value = _CACHE[key] = build()
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return value


@dataclass(frozen=True)
class EmbedJob:
    """Embed rows of ``images/<source>`` into the (N, D) array being built at ``out``."""

    root: str
    dataset: str
    space: str
    space_hash: str  # the stored space's content hash: a new encoder is a new cache entry
    source: str
    device: str
    out: str


def embed_rows(job: EmbedJob, start: int, stop: int) -> int:
    store = Store(job.root, job.dataset)
    device = resolve_device(job.device)
    embedder = cached(("space", job.root, job.dataset, job.space, job.space_hash, device),
                      lambda: open_space(store, job.space, device))
    images = np.asarray(store.source(job.source).images()[start:stop])
    zarr.open_array(store=job.out, mode="r+")[start:stop] = embedder.embed(images)
    return stop - start


@dataclass(frozen=True)
class ArtifactJob:
    """Search the query rows of ``source`` in shards of the reference set and write their artifacts at ``out``."""

    root: str
    dataset: str
    space: str
    index_hash: str
    search: SearchSettings
    device: str
    source: str
    first: int  # the source's first query row
    shards: tuple[tuple[int, int], ...]  # reference row ranges
    k: int
    kinds: tuple[str, ...]
    knn_reg: float
    derived: bool
    out: str


def _shard(job: ArtifactJob, shard: int) -> Searcher:
    start, stop = job.shards[shard]
    device = resolve_device(job.device)

    def build() -> Searcher:
        rows = Store(job.root, job.dataset).real.embeddings(job.space)[start:stop]
        return Searcher(build_flat_index(np.ascontiguousarray(rows, dtype=np.float32)), job.search, device)

    return cached(("shard", job.root, job.dataset, job.space, job.index_hash, start, stop, device, job.search), build)


def _queries(job: ArtifactJob, start: int, stop: int) -> np.ndarray:
    embeddings = Store(job.root, job.dataset).source(job.source).embeddings(job.space)
    return np.ascontiguousarray(embeddings[job.first + start : job.first + stop], dtype=np.float32)


def search_shard(job: ArtifactJob, shard: int, start: int, stop: int) -> Found:
    """:func:`shard_candidates` of one shard for the job's query rows ``start:stop``."""
    return shard_candidates(_shard(job, shard), _queries(job, start, stop), job.k, job.shards[shard][0])


def shard_candidates(searcher: Searcher, queries: np.ndarray, k: int, offset: int) -> Found:
    """The ``k`` nearest rows of one shard (rows ``offset ..`` of the reference set): global ids, and float64
    squared distances, the exact values the local re-rank computes for them."""
    ids, _ = searcher.search(queries, min(k, searcher.ntotal))
    return ids + offset, squared_distances(queries, ids, searcher.vectors)


def merge(parts: list[Found], k: int) -> Found:
    """The global ``k`` nearest from every shard's: by exact distance, ties to the smaller row, as locally."""
    return select(np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1), k)


def shard_rows(job: ArtifactJob, shard: int, found: Found) -> tuple[np.ndarray, np.ndarray]:
    """The reference rows this shard holds among the neighbours found: (sorted global ids, float32 rows)."""
    start, stop = job.shards[shard]
    ids = np.unique(found[0])
    ids = ids[(ids >= start) & (ids < stop)]
    return ids, _shard(job, shard).vectors(ids - start)


def write_artifacts(job: ArtifactJob, start: int, stop: int, found: Found,
                    parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Write the artifacts of query rows ``start:stop``; returns the block's sums of nn_dist and knn_dist."""
    if not parts:  # derived nearest artifacts keep only the ids: no vector is read
        parts = [(np.empty(0, np.int64), np.empty((0, 0), np.float32))]
    ids = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    order = np.argsort(ids, kind="stable")
    ids, rows = ids[order], rows[order]

    def vectors(wanted: np.ndarray) -> np.ndarray:
        return rows[np.searchsorted(ids, wanted)]

    arrays = artifacts_from_neighbours(_queries(job, start, stop), found[0], found[1], vectors, job.kinds,
                                       job.knn_reg, job.derived)
    arrays["query_row"] = np.arange(job.first + start, job.first + stop, dtype=np.int64)
    group = zarr.open_group(store=job.out, mode="r+")
    for name, values in arrays.items():
        group[name][start:stop] = values
    knn = float(arrays["knn_dist"].sum()) if "knn_dist" in arrays else 0.0
    return float(arrays["nn_dist"].astype(np.float64).sum()), knn
