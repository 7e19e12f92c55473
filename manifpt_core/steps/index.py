"""Step 3, index building: a FAISS index over the real reference embeddings of one space.

Exact (flat) by default; IVF or HNSW when ``search.backend`` asks for them, and
then the index card records its recall@1 against exact search, measured on the
real class embeddings (held-out real queries that the index never saw).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from manifpt_core import search
from manifpt_core.config import Settings
from manifpt_core.store import Outcome, Source, Store, run_cached
from manifpt_core.store.hashing import file_hash
from manifpt_core.store.layout import CARD_FILE, INDEX_FILE
from manifpt_core.store.records import IndexSummary
from manifpt_core.torch_helpers import resolve_device

INDEX_VERSION = "2"


def sample_rows(first: int, n: int, size: int, seed: int) -> np.ndarray:
    """A seeded, sorted sample of ``size`` rows (at most ``n``) from ``first .. first + n``."""
    rows = np.random.default_rng(seed).choice(n, size=min(size, n), replace=False)
    return first + np.sort(rows)


def recall_of(searcher: search.Searcher, settings: Settings, space: str, source: Source) -> dict[str, Any] | None:
    """recall@1 of an approximate searcher on a seeded sample of a source's query rows; None for exact search."""
    summary = source.summary
    first, n = summary.query_start, summary.n_queries
    if searcher.exact or n == 0:
        return None
    rows = sample_rows(first, n, settings.search.recall_queries, settings.data_seed)
    queries = source.embeddings(space).get_orthogonal_selection((rows, slice(None)))
    return search.measure_recall(searcher, np.ascontiguousarray(queries), len(rows), seed=settings.data_seed)


def build_index(store: Store, settings: Settings, space: str) -> Outcome[IndexSummary]:
    """Write ``index/<space>/index.faiss`` and ``card.json`` (space, D, N, kind, recall, fingerprint)."""
    real = store.real
    embeddings_hash = real.embeddings_record(space).content_hash

    def compute(tmp: Path, fp: str) -> tuple[str, IndexSummary]:
        reference = real.reference_embeddings(space)
        index = search.build_index(reference, settings.search, seed=settings.data_seed)
        tmp.mkdir(parents=True)
        search.save_index(index, tmp / INDEX_FILE)
        searcher = search.Searcher(index, settings.search, resolve_device(settings.device))
        card = IndexSummary(space=space, dim=int(reference.shape[1]), n=int(reference.shape[0]),
                            kind=search.index_kind(index), search=settings.search.settings(), fingerprint=fp,
                            recall=recall_of(searcher, settings, space, real))
        (tmp / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2))
        return file_hash(tmp / INDEX_FILE), card

    return run_cached(store.paths.index(space), "index", INDEX_VERSION, {"real_embeddings": embeddings_hash},
                      {"search": settings.search.settings()}, compute, IndexSummary)


def load_index(store: Store, space: str) -> faiss.Index:
    """Read a built index back from the store."""
    store.index(space)  # a clear error when it was never built
    return search.load_index(store.paths.index_file(space))


def open_searcher(store: Store, settings: Settings, space: str) -> search.Searcher:
    """The stored index of a space, ready to search on the configured device."""
    return search.Searcher(load_index(store, space), settings.search, resolve_device(settings.device))
