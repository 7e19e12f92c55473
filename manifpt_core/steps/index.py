"""Step 3, index building: an exact FAISS index over the real reference embeddings of one space."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from manifpt_core.config import Settings
from manifpt_core.search import build_flat_index
from manifpt_core.steps.cache import Outcome, require_record, run_cached
from manifpt_core.store import Store, array_bytes_hash, open_array

INDEX_VERSION = "1"
INDEX_FILE = "index.faiss"


def reference_vectors(store: Store, space: str) -> np.ndarray:
    """The reference rows (the first ``n_reference`` real rows) of a space's real embeddings."""
    real = require_record(store.images("real"), "the real images (ingestion)")
    return np.ascontiguousarray(open_array(store.embeddings(space, "real"))[: real["summary"]["n_reference"]])


def build_index(store: Store, settings: Settings, space: str) -> Outcome:
    """Write ``index/<space>/index.faiss`` and ``card.json`` (space, D, N, kind, fingerprint)."""
    emb = require_record(store.embeddings(space, "real"), f"the real embeddings in {space!r}")

    def compute(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
        reference = reference_vectors(store, space)
        index = build_flat_index(reference)
        tmp.mkdir(parents=True)
        faiss.write_index(index, str(tmp / INDEX_FILE))
        card = {"space": space, "dim": int(reference.shape[1]), "n": int(reference.shape[0]),
                "kind": "flat_l2_exact", "fingerprint": fp}
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        return array_bytes_hash(reference), card

    return run_cached(store.index(space), "index", INDEX_VERSION, {"real_embeddings": emb["content_hash"]},
                      {"kind": "flat_l2_exact"}, compute)


def load_index(store: Store, space: str) -> faiss.Index:
    """Read a built index back from the store."""
    require_record(store.index(space), f"the reference index in {space!r}")
    return faiss.read_index(str(store.index(space) / INDEX_FILE))
