"""Store-level caching: a step whose output exists with the same fingerprint reuses it.

Every output is a directory (a Zarr store, or a folder of files). Its record —
fingerprint, content hash, inputs, settings and a summary — is written inside
it (Zarr attributes, or ``record.json``) before the directory is renamed into
place, so a record is only ever seen beside a complete output.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr

from manifpt_core.errors import StoreError
from manifpt_core.store.arrays import RECORD_KEY, read_record
from manifpt_core.store.atomic import atomic_path
from manifpt_core.store.hashing import fingerprint

logger = logging.getLogger(__name__)
RECORD_FILE = "record.json"


@dataclass
class Outcome:
    """What a step produced (or found already stored)."""

    step: str
    path: Path
    fingerprint: str
    content_hash: str
    reused: bool
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Flat, JSON-safe facts for logs and Dagster metadata."""
        return {
            "path": str(self.path),
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            "fingerprint": self.fingerprint,
            "content_hash": self.content_hash,
            **self.summary,
        }


def load_record(path: Path) -> dict[str, Any] | None:
    """The record of a stored output, or None when there is none."""
    path = Path(path)
    if path.suffix == ".zarr":
        return read_record(path)
    record_file = path / RECORD_FILE
    return json.loads(record_file.read_text()) if record_file.is_file() else None


def require_record(path: Path, producer: str) -> dict[str, Any]:
    """The record of an upstream output; a missing one names the step that makes it."""
    record = load_record(path)
    if record is None:
        raise StoreError(f"nothing complete at {path}: materialize {producer} first")
    return record


def run_cached(
    path: Path,
    step: str,
    version: str,
    inputs: Mapping[str, str],
    settings: Mapping[str, Any],
    compute: Callable[[Path, str], tuple[str, dict[str, Any]]],
    extra_valid: Callable[[str], bool] | None = None,
) -> Outcome:
    """Reuse the output at ``path`` if its fingerprint matches, else ``compute`` it atomically.

    ``compute(tmp, fingerprint)`` writes the whole output under ``tmp`` and returns
    ``(content_hash, summary)``. ``extra_valid(fingerprint)`` lets a step check
    companions stored elsewhere (e.g. a manifest beside an image store).
    """
    path = Path(path)
    fp = fingerprint(step, version, inputs, settings)
    start = time.perf_counter()
    record = load_record(path)
    if record is not None and record.get("fingerprint") == fp and (extra_valid is None or extra_valid(fp)):
        logger.info("%s: reusing %s (fingerprint %s)", step, path, fp[:12])
        return Outcome(step, path, fp, record["content_hash"], True, time.perf_counter() - start, record.get("summary", {}))
    logger.info("%s: computing %s", step, path)
    with atomic_path(path) as tmp:
        content_hash, summary = compute(tmp, fp)
        record = {
            "step": step,
            "version": version,
            "fingerprint": fp,
            "content_hash": content_hash,
            "inputs": dict(inputs),
            "settings": dict(settings),
            "summary": summary,
        }
        if path.suffix == ".zarr":
            zarr.open(store=str(tmp), mode="r+").attrs[RECORD_KEY] = record
        else:
            (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    seconds = time.perf_counter() - start
    logger.info("%s: wrote %s in %.1f s", step, path, seconds)
    return Outcome(step, path, fp, content_hash, False, seconds, summary)
