"""Store-level caching: a step whose output exists with the same fingerprint reuses it.

Every output is a directory (a Zarr store, or a folder of files). Its record —
fingerprint, content hash, inputs, settings and a typed summary — is written
inside it (Zarr attributes, or ``record.json``) before the directory is renamed
into place, so a record is only ever seen beside a complete output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic

import zarr

from manifpt_core.errors import StoreError
from manifpt_core.store.arrays import RECORD_KEY, read_record
from manifpt_core.store.atomic import atomic_path
from manifpt_core.store.hashing import fingerprint
from manifpt_core.store.layout import RECORD_FILE
from manifpt_core.store.records import Record, S

logger = logging.getLogger(__name__)


@dataclass
class Outcome(Generic[S]):
    """What a step produced (or found already stored), with its typed summary."""

    step: str
    path: Path
    fingerprint: str
    content_hash: str
    reused: bool
    seconds: float
    summary: S

    def metadata(self) -> dict[str, Any]:
        """Flat, JSON-safe facts for logs and Dagster metadata."""
        return {
            "path": str(self.path),
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            "fingerprint": self.fingerprint,
            "content_hash": self.content_hash,
            **self.summary.to_dict(),
        }


@dataclass(frozen=True)
class PlannedStep:
    """What a step would do now: ``fresh`` (its stored output has the fingerprint of the current inputs and
    settings, so it would be reused), ``stale`` (stored, but made from other inputs, settings or code) or
    ``missing``."""

    step: str
    path: Path
    status: str
    fingerprint: str
    stored_fingerprint: str | None = None


@dataclass
class Plan:
    """The steps seen while planning (see :func:`planning`)."""

    steps: list[PlannedStep] = field(default_factory=list)


_PLAN: ContextVar[Plan | None] = ContextVar("manifpt_plan", default=None)


@contextlib.contextmanager
def planning() -> Iterator[Plan]:
    """Within this context :func:`run_cached` computes nothing: it records whether each output is fresh, stale
    or missing and returns the stored one (or an Outcome without summary), so calling the steps in order tells
    what a run would recompute. A step whose upstream output is missing raises StoreError as usual."""
    plan = Plan()
    token = _PLAN.set(plan)
    try:
        yield plan
    finally:
        _PLAN.reset(token)


def _raw_record(path: Path) -> dict[str, Any] | None:
    if path.suffix == ".zarr":
        return read_record(path)
    record_file = path / RECORD_FILE
    if not record_file.is_file():
        return None
    try:
        return json.loads(record_file.read_text())
    except json.JSONDecodeError as err:
        raise StoreError(f"{record_file} is not valid JSON ({err}); delete {path} to recompute it") from err


def load_record(path: Path, summary_type: type[S]) -> Record[S] | None:
    """The typed record of a stored output, or None when nothing complete is there."""
    raw = _raw_record(Path(path))
    return None if raw is None else Record.from_dict(raw, summary_type)


def require_record(path: Path, summary_type: type[S], producer: str) -> Record[S]:
    """The typed record of an upstream output; a missing one names the step that makes it."""
    record = load_record(path, summary_type)
    if record is None:
        raise StoreError(f"nothing complete at {path}: materialize {producer} first")
    return record


def run_cached(
    path: Path,
    step: str,
    version: str,
    inputs: Mapping[str, str],
    settings: Mapping[str, Any],
    compute: Callable[[Path, str], tuple[str, S]],
    summary_type: type[S],
    extra_valid: Callable[[str], bool] | None = None,
) -> Outcome[S]:
    """Reuse the output at ``path`` if its fingerprint matches, else ``compute`` it atomically.

    ``compute(tmp, fingerprint)`` writes the whole output under ``tmp`` and returns
    ``(content_hash, summary)``. ``extra_valid(fingerprint)`` lets a step check
    companions stored elsewhere (e.g. a manifest beside an image store).
    """
    path = Path(path)
    fp = fingerprint(step, version, inputs, settings)
    start = time.perf_counter()
    raw = _raw_record(path)
    fresh = raw is not None and raw.get("fingerprint") == fp and (extra_valid is None or extra_valid(fp))
    plan = _PLAN.get()
    if plan is not None:
        status = "fresh" if fresh else ("stale" if raw is not None else "missing")
        plan.steps.append(PlannedStep(step, path, status, fp, raw.get("fingerprint") if raw else None))
        record = Record.from_dict(raw, summary_type) if raw is not None else None
        return Outcome(step, path, fp, record.content_hash if record else "", fresh, 0.0,
                       record.summary if record else None)
    if fresh:
        record = Record.from_dict(raw, summary_type)
        logger.info("%s: reusing %s (fingerprint %s)", step, path, fp[:12])
        return Outcome(step, path, fp, record.content_hash, True, time.perf_counter() - start, record.summary)
    logger.info("%s: computing %s", step, path)
    with atomic_path(path) as tmp:
        content_hash, summary = compute(tmp, fp)
        record = Record(step, version, fp, content_hash, dict(inputs), dict(settings), summary).to_dict()
        if path.suffix == ".zarr":
            zarr.open(store=str(tmp), mode="r+").attrs[RECORD_KEY] = record
        else:
            (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    seconds = time.perf_counter() - start
    logger.info("%s: wrote %s in %.1f s", step, path, seconds)
    return Outcome(step, path, fp, content_hash, False, seconds, summary)
