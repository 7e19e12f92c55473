"""Nearest-neighbour search over the reference set: exact by default, IVF and HNSW as measured options.

Whatever proposes the candidates (FAISS on CPU or GPU, or a torch matrix product),
the answer is re-ranked by exact distance, and queries stream in blocks so memory
does not grow with their number. ``Searcher`` is the entry point.
"""

from manifpt_core.search.checks import check_matrix
from manifpt_core.search.index import (
    build_flat_index,
    build_index,
    index_kind,
    load_index,
    save_index,
)
from manifpt_core.search.searcher import Searcher, measure_recall, recall_at_1
from manifpt_core.search.settings import SearchSettings

__all__ = [
    "SearchSettings",
    "Searcher",
    "build_flat_index",
    "build_index",
    "check_matrix",
    "index_kind",
    "load_index",
    "measure_recall",
    "recall_at_1",
    "save_index",
]
