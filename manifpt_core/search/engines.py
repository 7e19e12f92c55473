"""Engines that fetch candidate neighbours for a block of queries and re-rank them exactly.

``FaissEngine`` runs any FAISS index (CPU, or a GPU copy of a flat or IVF index).
``TorchEngine`` is exact search as a blocked matrix product: scores
``|r|^2 - 2 q.r`` for one reference block at a time, merged with ``topk``, so the
temporary memory is one (query block, reference block) score matrix. On CUDA the
reference stays resident on the GPU and the candidates' exact distances are
computed there in float32; elsewhere in float64 on the CPU (``rerank``).
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
        q = torch.from_numpy(queries).to(self.device)
        cand = self.candidates(q, m)
        if self.device.type == "cpu":
            squared = squared_distances(queries, cand.numpy(), self.rows.__getitem__)
        else:
            squared = self.squared_distances(q, cand).cpu().numpy()
        return select(cand.cpu().numpy(), squared, k, exclude)

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
