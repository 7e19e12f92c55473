"""Nearest reference rows for blocks of queries, by exact distance, on the engine that fits the index and device.

The engine (FAISS on CPU or GPU, or a torch matrix product) only proposes
candidates; every answer is re-ranked by exact distance, so backends differ only
in which candidates they find, and ``measure_recall`` says how often that misses.
Queries are searched ``settings.query_block`` at a time: peak memory is the
reference plus one block, whatever the number of queries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import faiss
import numpy as np
import torch

from manifpt_core.errors import InputError
from manifpt_core.search.checks import check_exclude, check_k, check_matrix
from manifpt_core.search.engines import FaissEngine, TorchEngine, faiss_gpu_available
from manifpt_core.search.index import build_flat_index, index_kind, stored_vectors
from manifpt_core.search.settings import SearchSettings

logger = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")
BACKEND_KINDS = {"exact": "flat", "ivf": "ivf", "hnsw": "hnsw"}
KIND_BACKENDS = {kind: backend for backend, kind in BACKEND_KINDS.items()}
# The engines that can be forced on each device (automatic choice may also run faiss-cpu for a GPU request).
ENGINE_DEVICES = {"cpu": ("faiss-cpu", "torch-cpu"), "cuda": ("faiss-gpu", "torch-cuda")}
# Exact search on the CPU. At d=2048 on a 2-core AMD EPYC (Zen 5), FAISS flat (its OpenBLAS) searched at
# 0.88-0.92 of numpy's float32 GEMM and the blocked torch product (MKL) at 0.70-0.74;
# benchmarks/bench_search.py measures both on the machine at hand.
CPU_EXACT_ENGINE = "faiss-cpu"


class Searcher:
    """Searches one index on ``device`` (``cpu`` or ``cuda``).

    Attributes: ``d`` and ``ntotal`` (the index's), ``kind`` (``flat``, ``ivf``, ``hnsw``),
    ``exact`` (True for flat) and ``engine``, what actually runs (``faiss-cpu``,
    ``faiss-gpu``, ``torch-cpu``, ``torch-cuda``; with ``search.precision`` other than
    ``fp32``, the torch engine and the precision, e.g. ``torch-cuda/bf16``). The keyword
    ``engine`` forces one of the device's ``ENGINE_DEVICES`` instead of the best one, for
    benchmarks and tests.

    Flat and HNSW rows are read in place from the index's storage, so the index must
    not change while a Searcher uses it. An IVF index lacking a direct map gets one
    (8 bytes a row) so that candidate rows can be read back by id for the re-rank.
    """

    def __init__(self, index: faiss.Index, settings: SearchSettings, device: str = "cpu", *,
                 engine: str | None = None) -> None:
        if device not in DEVICES:
            raise InputError(f"device = {device!r} is not one of {DEVICES}")
        if device == "cuda" and not (torch.cuda.is_available() or faiss_gpu_available()):
            raise InputError("device 'cuda' was asked but no CUDA device is visible; use device='cpu'")
        if engine is not None and engine not in ENGINE_DEVICES.get(device, ()):
            raise InputError(f"engine = {engine!r} does not run on device {device!r}; "
                             f"choose one of {ENGINE_DEVICES[device]}")
        self.index, self.settings, self.device = index, settings, device
        self.kind = index_kind(index)
        if BACKEND_KINDS[settings.backend] != self.kind:
            raise InputError(f"search.backend = {settings.backend!r} but the index is {self.kind}; rebuild the index "
                             f"with these settings, or search it with backend {KIND_BACKENDS[self.kind]!r}")
        self.d, self.ntotal = int(index.d), int(index.ntotal)
        if self.ntotal == 0:
            raise InputError("the index is empty; build it over at least one reference row")
        self.exact = self.kind == "flat"
        if self.kind == "ivf" and index.direct_map.no():
            index.make_direct_map()
        self._rows = stored_vectors(index)
        base = engine or self._best_engine()
        self.engine = base if settings.precision == "fp32" else f"{base}/{settings.precision}"
        self._engine = self._start(base)
        where = f" on {torch.cuda.get_device_name()}" if device == "cuda" and torch.cuda.is_available() else ""
        logger.info("searching a %s index of %d x %d rows with %s%s", self.kind, self.ntotal, self.d, self.engine, where)

    def _best_engine(self) -> str:
        if self.settings.precision != "fp32":  # only the torch engines score in reduced precision
            return f"torch-{self.device}"
        if self.device == "cpu":
            return CPU_EXACT_ENGINE if self.exact else "faiss-cpu"
        if faiss_gpu_available() and self.kind != "hnsw":
            return "faiss-gpu"
        if self.exact:
            return "torch-cuda"
        logger.warning("%s search has no GPU engine here (%s); it runs with faiss on the CPU, so the GPU "
                       "does not speed it up", self.kind,
                       "faiss-gpu has no HNSW" if faiss_gpu_available() else "faiss-gpu is not installed")
        return "faiss-cpu"

    def _start(self, engine: str) -> FaissEngine | TorchEngine:
        if engine.startswith("torch"):
            if not self.exact:
                raise InputError(f"engine {engine!r} searches flat indexes only; this index is {self.kind}")
            return TorchEngine(self._rows, self.device, self.settings.precision)
        if self.settings.precision != "fp32":
            raise InputError(f"search.precision = {self.settings.precision!r} runs on the torch engines; engine "
                             f"{engine!r} scores in fp32: use engine 'torch-{self.device}' or precision 'fp32'")
        if engine == "faiss-gpu" and (self.kind == "hnsw" or not faiss_gpu_available()):
            raise InputError(f"engine 'faiss-gpu' cannot search a {self.kind} index here; "
                             "it needs faiss with GPU support and a flat or IVF index")
        return FaissEngine(self.index, self.vectors, self._params(), gpu=engine == "faiss-gpu")

    def _params(self) -> faiss.SearchParameters | None:
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=self.settings.nprobe)
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=self.settings.ef_search)
        return None

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """float32 reference rows for an int array of ids, shape ``ids.shape + (D,)``."""
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.ntotal):
            raise InputError(f"row ids must lie in 0..{self.ntotal - 1}; got {ids.min()}..{ids.max()}")
        flat = ids.reshape(-1).astype(np.int64, copy=False)
        rows = self._rows[flat] if self._rows is not None else self.index.reconstruct_batch(flat)
        return rows.reshape(*ids.shape, self.d)

    def search(self, queries: np.ndarray, k: int = 1,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest reference rows of each query by exact Euclidean distance, ascending.

        Returns ``(ids int64 (n, k), dist float32 (n, k))``; ties go to the smaller row;
        ``exclude[i]`` (a row, or -1) is never returned for query ``i``.
        """
        queries = check_matrix(queries, self.d, "queries")
        exclude = check_exclude(exclude, len(queries), self.ntotal)
        k = check_k(k, self.ntotal, exclude is not None)
        m = min(self.ntotal, k + self.settings.candidates + (exclude is not None))
        step = self.settings.query_block
        starts = range(0, len(queries), step)
        parts = self._engine.search_blocks([queries[s:s + step] for s in starts], m, k,
                                           [None if exclude is None else exclude[s:s + step] for s in starts])
        ids = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, k), np.int64)
        dist = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, k), np.float32)
        missing = int((ids < 0).any(axis=1).sum())
        if missing:
            raise InputError(f"the {self.kind} index found fewer than {k} candidates for {missing} queries; "
                             "raise search.nprobe (IVF) or search.ef_search (HNSW), or use backend 'exact'")
        return ids, dist

    def stream(self, blocks: Iterable[np.ndarray], k: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``search`` block by block: memory holds the reference and one block, whatever the query count."""
        for block in blocks:
            yield self.search(block, k)


def recall_at_1(found_ids: np.ndarray, found_dist: np.ndarray, true_ids: np.ndarray, true_dist: np.ndarray) -> float:
    """Fraction of queries whose found nearest row is the true one, or at the same exact distance (rel. 1e-6).

    Each argument is (n,), or (n, k) with the nearest first.
    """
    given = (found_ids, found_dist, true_ids, true_dist)
    firsts = [np.asarray(a)[:, 0] if np.ndim(a) == 2 else np.asarray(a) for a in given]
    if len({a.shape for a in firsts}) != 1 or firsts[0].ndim != 1 or firsts[0].size == 0:
        raise InputError("recall_at_1 needs four non-empty arrays of n rows, (n,) or (n, k); got shapes "
                         f"{[np.shape(a) for a in given]}")
    found_ids, found_dist, true_ids, true_dist = firsts
    tie = np.isclose(found_dist, true_dist, rtol=1e-6, atol=0)
    return float(np.mean((found_ids == true_ids) | tie))


def measure_recall(searcher: Searcher, queries: np.ndarray, sample: int, seed: int = 0) -> dict:
    """Recall@1 of ``searcher`` on a seeded sample of ``queries``, against exact search over the same rows.

    The exact search holds a second copy of the reference while it runs.
    """
    queries = check_matrix(queries, searcher.d, "queries")
    if sample < 1 or len(queries) == 0:
        raise InputError(f"measuring recall needs queries and a sample of at least 1; got {len(queries)} "
                         f"queries and sample = {sample} (search.recall_queries)")
    rows = np.sort(np.random.default_rng(seed).choice(len(queries), min(sample, len(queries)), replace=False))
    subset = queries[rows]
    exact = Searcher(build_flat_index(searcher.vectors(np.arange(searcher.ntotal))),
                     SearchSettings(candidates=searcher.settings.candidates), searcher.device)
    recall = recall_at_1(*searcher.search(subset), *exact.search(subset))
    return {"recall_at_1": recall, "n_queries": len(rows)}
