"""Artifacts: for each query, its nearest reference vector x* and the difference a = x - x*."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import faiss
import numpy as np

from manifpt_core.search import nearest


def artifacts_of_block(
    index: faiss.Index, reference: np.ndarray, queries: np.ndarray, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(nn_id int64, nn_dist float32, artifact float32 (n, D))`` for one block of query vectors."""
    nn_id, nn_dist = nearest(index, reference, queries, exclude=exclude)
    artifact = queries - reference[nn_id]
    return nn_id, nn_dist, artifact.astype(np.float32, copy=False)


def stream_artifacts(
    index: faiss.Index, reference: np.ndarray, blocks: Iterable[np.ndarray]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Artifacts block by block: memory holds the reference and one block, whatever the query count."""
    for block in blocks:
        yield artifacts_of_block(index, reference, np.ascontiguousarray(block, dtype=np.float32))
