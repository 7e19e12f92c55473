"""Engines that fetch candidate neighbours for a block of queries and re-rank them exactly.

``FaissEngine`` runs any FAISS index (CPU, or a GPU copy of a flat or IVF index).
``TorchEngine`` is exact search as a blocked matrix product: scores
``|r|^2 - 2 q.r`` for one reference block at a time, merged with ``topk``, so the
temporary memory is one (query block, reference block) score matrix. On CUDA the
reference stays resident on the GPU and the candidates' exact distances are
computed there in float32; elsewhere in float64 on the CPU (``rerank``).

Engines take a list of query blocks (``search_blocks``): on CUDA the next block
is pinned and copied to the GPU on a side stream while the current one is being
searched, so the host-to-device copy hides behind the matrix products.

With ``precision`` ``fp16`` or ``bf16`` the torch engines score candidates from a
reduced-precision copy of the reference, fetch ``MARGIN`` more of them, and keep
only answers that ``precision.certified`` proves exact; the other queries are
searched again in fp32 (``precision.py`` has the bound).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import faiss
import numpy as np
import torch

from manifpt_core.search.precision import (
    DTYPES,
    MARGIN,
    U32,
    certified,
    check_products,
    check_range,
    score_error_bound,
)
from manifpt_core.search.rerank import select, squared_distances

logger = logging.getLogger(__name__)

# Reference rows scored at a time: a (4096, 8192) float32 score matrix is 128 MiB on the CPU;
# a GPU has room for a larger block, and fewer, larger products keep it busy.
REFERENCE_BLOCK = {"cpu": 8192, "cuda": 65536}
# Relative rounding error of the re-rank's squared distances: float64 on the CPU, float32 on CUDA.
RERANK_EPS = {"cpu": 2.0**-50, "cuda": 2.0**-21}

Block = tuple[np.ndarray, np.ndarray]


def faiss_gpu_available() -> bool:
    """Whether the installed FAISS was built with GPU support and sees a GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class FaissEngine:
    """Candidates from a FAISS index; the re-rank reads their rows through ``vectors``, in float64 on the CPU."""

    def search_blocks(self, blocks: list[np.ndarray], m: int, k: int, excludes: list[np.ndarray | None]) -> list[Block]:
        return [self.search(block, m, k, exclude) for block, exclude in zip(blocks, excludes)]

    def __init__(self, index: faiss.Index, vectors: Callable[[np.ndarray], np.ndarray],
                 params: faiss.SearchParameters | None, gpu: bool = False) -> None:
        if gpu:
            self.resources = faiss.StandardGpuResources()  # must live as long as the GPU index
            index = faiss.index_cpu_to_gpu(self.resources, 0, index)
        self.index, self.vectors, self.params = index, vectors, params

    def search(self, queries: np.ndarray, m: int, k: int, exclude: np.ndarray | None) -> Block:
        """The ``k`` nearest of ``m`` candidates per query: ``(ids int64 (n, k), dist float32 (n, k))``."""
        _, cand = self.index.search(queries, m, params=self.params)
        return select(cand, squared_distances(queries, cand, self.vectors), k, exclude)


class TorchEngine:
    """Exact search by blocked matrix products in torch, on the CPU or a CUDA device.

    ``precision`` ``fp16`` / ``bf16`` scores candidates from a reduced-precision copy of the reference
    (module docstring); ``searched`` and ``fallbacks`` count the queries seen and those searched again in fp32.
    """

    def __init__(self, reference: np.ndarray, device: str, precision: str = "fp32") -> None:
        self.device = torch.device(device)
        self.rows = reference  # the CPU re-rank reads them, zero-copy
        self.reference = torch.from_numpy(reference).to(self.device)  # zero-copy on the CPU
        self.norms = torch.einsum("nd,nd->n", self.reference, self.reference)
        self.block = REFERENCE_BLOCK[device]
        self.precision, self.searched, self.fallbacks, self._warned = precision, 0, 0, False
        if precision != "fp32":
            self._centre(DTYPES[precision])
            self.float_products = self.device.type == "cuda" and _float32_products(self.device, DTYPES[precision])
            if self.device.type == "cpu" and precision == "fp16":
                logger.warning("search.precision = 'fp16' on the CPU: torch's fp16 matrix products run several "
                               "times slower than fp32 there; 'bf16' is the reduced precision for CPUs")

    def _centre(self, dtype: torch.dtype) -> None:
        """The reduced copy holds ``r - c``, c the reference mean: distances do not change, and the norms in the
        error bound shrink to the spread around the mean (embeddings and pixels are far from the origin)."""
        n, d = self.reference.shape
        centre = self.rows.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.centre, self.centre64 = torch.from_numpy(centre).to(self.device), centre.astype(np.float64)
        self.low = torch.empty((n, d), dtype=dtype, device=self.device)
        self.low_norms = torch.empty(n, device=self.device)
        for start in range(0, n, self.block):
            rows = self.reference[start:start + self.block] - self.centre
            check_range(rows, self.precision, "reference rows (minus their mean)")
            self.low[start:start + self.block] = rows
            self.low_norms[start:start + self.block] = torch.einsum("nd,nd->n", rows, rows)
        # float32 norms are within gamma_d of the true ones; the bound wants an upper bound of max |r - c|.
        self.r_max = math.sqrt(float(self.low_norms.max()) * (1 + 2 * d * U32)) if n else 0.0

    @torch.inference_mode()
    def search(self, queries: np.ndarray, m: int, k: int, exclude: np.ndarray | None) -> Block:
        """The ``k`` nearest of ``m`` candidates per query: ``(ids int64 (n, k), dist float32 (n, k))``."""
        return self.search_blocks([queries], m, k, [exclude])[0]

    @torch.inference_mode()
    def search_blocks(self, blocks: list[np.ndarray], m: int, k: int, excludes: list[np.ndarray | None]) -> list[Block]:
        """``search`` of each block; on CUDA, block i + 1 is uploaded while block i is searched."""
        if self.device.type == "cpu":
            return [self._search_cpu(queries, m, k, exclude) for queries, exclude in zip(blocks, excludes)]
        low = self.precision != "fp32"
        m_low = min(len(self.reference), m + MARGIN[self.precision]) if low else m
        # Checked (and their norms taken) before any GPU work, so a query out of fp16's range fails the call at once.
        q_norms = [self._check_queries(queries) if low else None for queries in blocks]
        copy_stream, compute_stream = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
        out, upload, queued = [], self._upload(blocks[0], copy_stream) if blocks else None, None
        for i, exclude in enumerate(excludes):
            compute_stream.wait_stream(copy_stream)
            q = upload[0]
            q.record_stream(compute_stream)
            score, cand = self._top(q, m_low, low)
            squared = self.squared_distances(q, cand)
            # Results come back by non-blocking copies; block i - 1 is finished on the host while the GPU
            # searches block i, and block i + 1 is pinned and uploaded meanwhile.
            done = torch.cuda.Event()
            largest = score.max(1).values if low else None
            results = tuple(t.to("cpu", non_blocking=True) for t in (cand, squared, largest) if t is not None)
            done.record(compute_stream)
            upload = self._upload(blocks[i + 1], copy_stream) if i + 1 < len(blocks) else None
            if queued is not None:
                out.append(self._finish(*queued))
            queued = (done, results, blocks[i], q_norms[i], m, k, exclude)
        if queued is not None:
            out.append(self._finish(*queued))
        return out

    def _search_cpu(self, queries: np.ndarray, m: int, k: int, exclude: np.ndarray | None) -> Block:
        if self.precision == "fp32":
            cand = self.candidates(torch.from_numpy(queries), m).numpy()
            return select(cand, squared_distances(queries, cand, self.rows.__getitem__), k, exclude)
        q_norms = self._check_queries(queries)
        score, cand = self._top(torch.from_numpy(queries), min(len(self.reference), m + MARGIN[self.precision]), True)
        cand = cand.numpy()
        squared = squared_distances(queries, cand, self.rows.__getitem__)
        return self._certified(queries, cand, squared, score.max(1).values.numpy(), q_norms, m, k, exclude)

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        """float64 query norms, once the queries are known to fit the reduced format (and their products)."""
        q_norms = _norms(queries, self.centre64, self.precision)
        if not self.float_products:
            check_products(float(q_norms.max(initial=0.0)), self.r_max, self.precision)
        return q_norms

    def _certified(self, queries: np.ndarray, cand: np.ndarray, squared: np.ndarray, largest: np.ndarray,
                   q_norms: np.ndarray, m: int, k: int, exclude: np.ndarray | None) -> Block:
        """``select`` of reduced-precision candidates; queries the certificate cannot prove go again in fp32."""
        ids, dist = select(cand, squared, k, exclude)
        if cand.shape[1] >= len(self.reference):
            return ids, dist  # every row is a candidate: nothing was left out
        valid = cand >= 0 if exclude is None else (cand >= 0) & (cand != exclude[:, None])
        kth = np.partition(np.where(valid, squared, np.inf), k - 1, axis=1)[:, k - 1].astype(np.float64)
        bound = score_error_bound(q_norms, self.r_max, queries.shape[1], self.precision,
                                  rounded_product=not self.float_products)
        redo = np.flatnonzero(~certified(kth, q_norms, largest, bound, RERANK_EPS[self.device.type]))
        self._count(len(queries), len(redo))
        if len(redo):
            sub = np.ascontiguousarray(queries[redo])
            ids[redo], dist[redo] = self._search_fp32(sub, m, k, None if exclude is None else exclude[redo])
        return ids, dist

    def _search_fp32(self, queries: np.ndarray, m: int, k: int, exclude: np.ndarray | None) -> Block:
        """The fp32 search of a few queries, on the engine's device, without the upload pipeline."""
        q = torch.from_numpy(queries).to(self.device)
        cand = self.candidates(q, m)
        if self.device.type == "cpu":
            squared = squared_distances(queries, cand.numpy(), self.rows.__getitem__)
            return select(cand.numpy(), squared, k, exclude)
        return select(cand.cpu().numpy(), self.squared_distances(q, cand).cpu().numpy(), k, exclude)

    def _count(self, searched: int, redone: int) -> None:
        self.searched, self.fallbacks = self.searched + searched, self.fallbacks + redone
        if redone > 0.1 * searched and not self._warned:
            self._warned = True
            logger.warning("search.precision = %r: %d of %d queries (%.0f%%) could not be certified from their %s "
                           "candidates and were searched again in fp32, which costs that share of an fp32 search "
                           "on top; precision 'fp32' may be faster on this data", self.precision, redone, searched,
                           100 * redone / searched, self.precision)

    def _finish(self, done: torch.cuda.Event, results: tuple[torch.Tensor, ...], queries: np.ndarray,
                q_norms: np.ndarray | None, m: int, k: int, exclude: np.ndarray | None) -> Block:
        done.synchronize()
        cand, squared = results[0].numpy(), results[1].numpy()
        if q_norms is None:
            return select(cand, squared, k, exclude)
        return self._certified(queries, cand, squared, results[2].numpy(), q_norms, m, k, exclude)

    def _upload(self, queries: np.ndarray, stream: torch.cuda.Stream) -> tuple[torch.Tensor, torch.Tensor]:
        """(device copy, pinned host copy) of a block; the copy runs on ``stream``, the host copy must outlive it."""
        pinned = torch.from_numpy(queries).pin_memory()
        with torch.cuda.stream(stream):
            return pinned.to(self.device, non_blocking=True), pinned

    def squared_distances(self, q: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """float32 ``|q - r|^2`` (n, m) of the candidate rows, from difference vectors on the engine's device."""
        squared = torch.empty(cand.shape, device=self.device)
        for j in range(cand.shape[1]):
            diff = q - self.reference[cand[:, j]]
            squared[:, j] = torch.einsum("nd,nd->n", diff, diff)
        return squared

    def candidates(self, q: torch.Tensor, m: int) -> torch.Tensor:
        """Row ids (n, m) of the ``m`` smallest float32 scores ``|r|^2 - 2 q.r`` over all reference blocks."""
        return self._top(q, m, False)[1]

    def _top(self, q: torch.Tensor, m: int, low: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores, ids)`` (n, m) of the ``m`` smallest scores, in fp32 or (``low``) from the reduced copy."""
        if low:
            q = (q - self.centre).to(DTYPES[self.precision])
        best_score = best_id = None
        for start in range(0, len(self.reference), self.block):
            stop = min(start + self.block, len(self.reference))
            scores = self._low_scores(q, start, stop) if low else \
                torch.addmm(self.norms[start:stop], q, self.reference[start:stop].T, alpha=-2)
            score, idx = torch.topk(scores, min(m, stop - start), dim=1, largest=False, sorted=False)
            idx += start
            if best_score is not None:
                score, idx = torch.cat([best_score, score], 1), torch.cat([best_id, idx], 1)
                score, pos = torch.topk(score, min(m, score.shape[1]), dim=1, largest=False, sorted=False)
                idx = torch.gather(idx, 1, pos)
            best_score, best_id = score, idx
        return best_score, best_id

    def _low_scores(self, q: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """float32 ``|r|^2 - 2 q.r`` from reduced-precision q and r (products accumulated in float32)."""
        r = self.low[start:stop].T
        dot = torch.mm(q, r, out_dtype=torch.float32) if self.float_products else torch.mm(q, r).float()
        return dot.mul_(-2).add_(self.low_norms[start:stop])


def _norms(queries: np.ndarray, centre: np.ndarray, precision: str) -> np.ndarray:
    """float64 norms of ``q - centre``, a few hundred rows at a time, once they are known to fit ``precision``."""
    out = np.empty(len(queries))
    for start in range(0, len(queries), 256):
        rows = queries[start:start + 256] - centre
        check_range(rows, precision, "queries (minus the reference mean)")
        out[start:start + 256] = np.sqrt(np.einsum("nd,nd->n", rows, rows))
    return out


def _float32_products(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether torch returns float32 products of ``dtype`` matrices on ``device`` (no rounding of q.r itself)."""
    try:
        a = torch.ones((2, 2), dtype=dtype, device=device)
        return torch.mm(a, a, out_dtype=torch.float32).dtype == torch.float32
    except (RuntimeError, TypeError, NotImplementedError):
        logger.info("torch.mm(..., out_dtype=float32) is not available for %s on %s; products are rounded to %s "
                    "and the certificate's bound allows for it", dtype, device, dtype)
        return False
