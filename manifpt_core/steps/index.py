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
from manifpt_core.attribution import resolve_device
from manifpt_core.config import Settings
from manifpt_core.steps.cache import Outcome, require_record, run_cached
from manifpt_core.store import Store, open_array
from manifpt_core.store.hashing import file_hash

INDEX_VERSION = "2"
INDEX_FILE = "index.faiss"


def reference_vectors(store: Store, space: str) -> np.ndarray:
    """The reference rows (the first ``n_reference`` real rows) of a space's real embeddings."""
    real = require_record(store.images("real"), "the real images (ingestion)")
    return np.ascontiguousarray(open_array(store.embeddings(space, "real"))[: real["summary"]["n_reference"]])


def sample_rows(first: int, n: int, size: int, seed: int) -> np.ndarray:
    """A seeded, sorted sample of ``size`` rows (at most ``n``) from ``first .. first + n``."""
    rows = np.random.default_rng(seed).choice(n, size=min(size, n), replace=False)
    return first + np.sort(rows)


def recall_of(searcher: search.Searcher, store: Store, settings: Settings, space: str, source: str,
              first: int, n: int) -> dict[str, Any] | None:
    """recall@1 of an approximate searcher on a seeded sample of a source's query rows; None for exact search."""
    if searcher.exact or n == 0:
        return None
    rows = sample_rows(first, n, settings.search.recall_queries, settings.data_seed)
    queries = open_array(store.embeddings(space, source)).get_orthogonal_selection((rows, slice(None)))
    return search.measure_recall(searcher, np.ascontiguousarray(queries), len(rows), seed=settings.data_seed)


def build_index(store: Store, settings: Settings, space: str) -> Outcome:
    """Write ``index/<space>/index.faiss`` and ``card.json`` (space, D, N, kind, recall, fingerprint)."""
    emb = require_record(store.embeddings(space, "real"), f"the real embeddings in {space!r}")

    def compute(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
        reference = reference_vectors(store, space)
        index = search.build_index(reference, settings.search, seed=settings.data_seed)
        tmp.mkdir(parents=True)
        search.save_index(index, tmp / INDEX_FILE)
        card = {"space": space, "dim": int(reference.shape[1]), "n": int(reference.shape[0]),
                "kind": search.index_kind(index), "search": settings.search.settings(), "fingerprint": fp}
        real = require_record(store.images("real"), "the real images")["summary"]
        searcher = search.Searcher(index, settings.search, resolve_device(settings.device))
        card["recall"] = recall_of(searcher, store, settings, space, "real", real["n_reference"], real["n_real_class"])
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        return file_hash(tmp / INDEX_FILE), card

    return run_cached(store.index(space), "index", INDEX_VERSION, {"real_embeddings": emb["content_hash"]},
                      {"search": settings.search.settings()}, compute)


def load_index(store: Store, space: str) -> faiss.Index:
    """Read a built index back from the store."""
    require_record(store.index(space), f"the reference index in {space!r}")
    return search.load_index(store.index(space) / INDEX_FILE)


def open_searcher(store: Store, settings: Settings, space: str) -> search.Searcher:
    """The stored index of a space, ready to search on the configured device."""
    return search.Searcher(load_index(store, space), settings.search, resolve_device(settings.device))
