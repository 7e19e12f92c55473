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
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np
import torch

from manifpt_core.search.rerank import select, squared_distances

# Reference rows scored at a time: a (4096, 8192) float32 score matrix is 128 MiB on the CPU;
# a GPU has room for a larger block, and fewer, larger products keep it busy.
REFERENCE_BLOCK = {"cpu": 8192, "cuda": 65536}

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
    """Exact search by blocked matrix products in torch, on the CPU or a CUDA device."""

    def __init__(self, reference: np.ndarray, device: str) -> None:
        self.device = torch.device(device)
        self.rows = reference  # the CPU re-rank reads them, zero-copy
        self.reference = torch.from_numpy(reference).to(self.device)  # zero-copy on the CPU
        self.norms = torch.einsum("nd,nd->n", self.reference, self.reference)
        self.block = REFERENCE_BLOCK[device]

    @torch.inference_mode()
    def search(self, queries: np.ndarray, m: int, k: int, exclude: np.ndarray | None) -> Block:
        """The ``k`` nearest of ``m`` candidates per query: ``(ids int64 (n, k), dist float32 (n, k))``."""
        return self.search_blocks([queries], m, k, [exclude])[0]

    @torch.inference_mode()
    def search_blocks(self, blocks: list[np.ndarray], m: int, k: int, excludes: list[np.ndarray | None]) -> list[Block]:
        """``search`` of each block; on CUDA, block i + 1 is uploaded while block i is searched."""
        if self.device.type == "cpu":
            out = []
            for queries, exclude in zip(blocks, excludes):
                cand = self.candidates(torch.from_numpy(queries), m).numpy()
                out.append(select(cand, squared_distances(queries, cand, self.rows.__getitem__), k, exclude))
            return out
        copy_stream, compute_stream = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
        out, upload, queued = [], self._upload(blocks[0], copy_stream) if blocks else None, None
        for i, exclude in enumerate(excludes):
            compute_stream.wait_stream(copy_stream)
            q = upload[0]
            q.record_stream(compute_stream)
            cand = self.candidates(q, m)
            squared = self.squared_distances(q, cand)
            # Results come back by non-blocking copies; block i - 1 is finished on the host while the GPU
            # searches block i, and block i + 1 is pinned and uploaded meanwhile.
            done = torch.cuda.Event()
            results = (cand.to("cpu", non_blocking=True), squared.to("cpu", non_blocking=True))
            done.record(compute_stream)
            upload = self._upload(blocks[i + 1], copy_stream) if i + 1 < len(blocks) else None
            if queued is not None:
                out.append(self._finish(*queued))
            queued = (done, results, k, exclude)
        if queued is not None:
            out.append(self._finish(*queued))
        return out

    @staticmethod
    def _finish(done: torch.cuda.Event, results: tuple[torch.Tensor, torch.Tensor], k: int,
                exclude: np.ndarray | None) -> Block:
        done.synchronize()
        return select(results[0].numpy(), results[1].numpy(), k, exclude)

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
        best_score = best_id = None
        for start in range(0, len(self.reference), self.block):
            stop = min(start + self.block, len(self.reference))
            scores = torch.addmm(self.norms[start:stop], q, self.reference[start:stop].T, alpha=-2)
            score, idx = torch.topk(scores, min(m, stop - start), dim=1, largest=False, sorted=False)
            idx += start
            if best_score is not None:
                score, idx = torch.cat([best_score, score], 1), torch.cat([best_id, idx], 1)
                score, pos = torch.topk(score, min(m, score.shape[1]), dim=1, largest=False, sorted=False)
                idx = torch.gather(idx, 1, pos)
            best_score, best_id = score, idx
        return best_id
