"""Search settings: which backend finds the nearest reference row, and how hard it looks.

Checked on construction, so a typo or an impossible value fails before any index is
built; ``settings()`` keeps only what changes results, because it enters fingerprints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from manifpt_core.errors import InputError
from manifpt_core.settings_loader import setting

BACKENDS = ("exact", "ivf", "hnsw")

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
    candidates: int = setting(4, ge=0)
    nlist: int = setting(0, ge=0)  # 0: chosen from N
    nprobe: int = setting(16, ge=1)
    hnsw_m: int = setting(32, ge=2)
    ef_construction: int = setting(80, ge=1)
    ef_search: int = setting(128, ge=1)
    recall_queries: int = setting(1000, ge=1)
    query_block: int = setting(4096, ge=1)

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


# The smallest valid value of each integer setting, as declared on its field (checked on direct construction too).
_MINIMUM = {f.name: f.metadata["ge"] for f in dataclasses.fields(SearchSettings) if "ge" in f.metadata}
