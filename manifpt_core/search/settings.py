"""Search settings: which backend finds the nearest reference row, and how hard it looks.

Checked on construction, so a typo or an impossible value fails before any index is
built; ``settings()`` keeps only what changes results, because it enters fingerprints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from manifpt_core.errors import InputError

BACKENDS = ("exact", "ivf", "hnsw")

# The smallest valid value of each integer setting (nlist 0 means: chosen from N).
_MINIMUM = {"candidates": 0, "nlist": 0, "nprobe": 1, "hnsw_m": 2, "ef_construction": 1, "ef_search": 1,
            "recall_queries": 1, "query_block": 1}

# Settings that change the returned neighbours, beyond backend and candidates.
_RESULT_KEYS = {"exact": (), "ivf": ("nlist", "nprobe"), "hnsw": ("hnsw_m", "ef_construction", "ef_search")}


@dataclass(frozen=True)
class SearchSettings:
    """How nearest neighbours are searched (keys ``search.<key>`` in the config).

    ``backend``: ``exact`` (flat), ``ivf`` (inverted lists) or ``hnsw`` (graph).
    ``candidates``: extra neighbours fetched and re-ranked by exact distance.
    ``nlist`` / ``nprobe``: IVF lists built (0: about 4 sqrt(N)) and visited per query.
    ``hnsw_m`` / ``ef_construction`` / ``ef_search``: HNSW links per node and beam widths.
    ``recall_queries``: queries sampled to measure recall@1 against exact search.
    ``query_block``: queries searched at a time; bounds memory, never changes results.
    """

    backend: str = "exact"
    candidates: int = 4
    nlist: int = 0
    nprobe: int = 16
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    recall_queries: int = 1000
    query_block: int = 4096

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"search.backend = {self.backend!r} is not one of {BACKENDS}")
        for key, low in _MINIMUM.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"search.{key} = {value!r} is not valid; it must be an integer >= {low}")

    def settings(self) -> dict[str, Any]:
        """The JSON-safe settings that change which neighbours are found (the backend's own, no others)."""
        keys = ("backend", "candidates", *_RESULT_KEYS[self.backend])
        return {key: getattr(self, key) for key in keys}
