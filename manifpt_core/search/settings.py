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
# Candidate scoring precisions of exact search; the answer is always re-ranked exactly (see search/precision.py).
PRECISIONS = ("fp32", "fp16", "bf16")

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
    ``precision``: ``fp32``, or ``fp16`` / ``bf16`` to score exact-search candidates in reduced
    precision (torch engines); the exact re-rank and a certificate keep the fp32 answer.
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
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"search.backend = {self.backend!r} is not one of {BACKENDS}")
        if self.precision not in PRECISIONS:
            raise InputError(f"search.precision = {self.precision!r} is not one of {PRECISIONS}")
        if self.precision != "fp32" and self.backend != "exact":
            raise InputError(f"search.precision = {self.precision!r} applies to exact search only; backend "
                             f"{self.backend!r} scores in fp32: set precision 'fp32' or backend 'exact'")
        for key, low in _MINIMUM.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"search.{key} = {value!r} is not valid; it must be an integer >= {low}")

    def settings(self) -> dict[str, Any]:
        """The JSON-safe settings that change which neighbours are found (the backend's own, no others).

        ``precision`` is recorded only when it is not ``fp32``, so stores made before it existed keep their
        fingerprints; the certified re-rank returns fp32's neighbours, but a fingerprint names how they were found.
        """
        keys = ("backend", "candidates", *_RESULT_KEYS[self.backend])
        out = {key: getattr(self, key) for key in keys}
        if self.precision != "fp32":
            out["precision"] = self.precision
        return out


# The smallest valid value of each integer setting, as declared on its field (checked on direct construction too).
_MINIMUM = {f.name: f.metadata["ge"] for f in dataclasses.fields(SearchSettings) if "ge" in f.metadata}
