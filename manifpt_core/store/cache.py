"""Store-level caching: a step whose output exists with the same fingerprint reuses it.

Every output is a directory (a Zarr store, or a folder of files). Its record —
fingerprint, content hash, inputs, settings and a typed summary — is written
inside it (Zarr attributes, or ``record.json``), then its integrity manifest, before the directory is
committed (:mod:`manifpt_core.store.atomic`), so a record is only ever seen beside a complete output.

One process at a time computes an output (:func:`manifpt_core.store.locks.output_lock`): a second one waits and
then reuses what the first stored. A stored output is reused only when its integrity manifest still matches the
files; a damaged one is recomputed, with a warning saying what was wrong.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic

import zarr

from manifpt_core.errors import StoreError
from manifpt_core.store.arrays import RECORD_KEY, read_record
from manifpt_core.store.atomic import atomic_path, clean_leftovers, lease
from manifpt_core.store.hashing import fingerprint
from manifpt_core.store.integrity import check_integrity, check_once, damage_error, write_integrity
from manifpt_core.store.layout import RECORD_FILE
from manifpt_core.store.locks import output_lock
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
    # Seconds of the named parts of a computation that times them (empty when reused). Not part of the stored
    # output, so its content hash does not depend on them.
    phases: dict[str, float] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Flat, JSON-safe facts for logs and Dagster metadata."""
        return {
            "path": str(self.path),
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            **({"phases": {k: round(v, 3) for k, v in self.phases.items()}} if self.phases else {}),
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


def is_planning() -> bool:
    """Whether the caller runs inside :func:`planning` (which writes nothing)."""
    return _PLAN.get() is not None


def read_version_record(folder: Path, zarr_like: bool) -> dict[str, Any] | None:
    """The record inside one version of an output (``folder``: what a lease resolved)."""
    if zarr_like:
        return read_record(folder)
    record_file = folder / RECORD_FILE
    if not record_file.is_file():
        return None
    try:
        return json.loads(record_file.read_text())
    except json.JSONDecodeError as err:
        raise StoreError(f"{record_file} is not valid JSON ({err}); run `manifpt verify --repair` to recompute "
                         "it") from err


def _raw_record(path: Path) -> dict[str, Any] | None:
    """The record of the output at ``path`` (None when nothing is stored there); a damaged output is a
    StoreError that says how to repair it."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    with lease(path) as held:
        problems = check_once(held.path)
        if problems:
            raise damage_error(path, problems)
        return read_version_record(held.path, path.suffix == ".zarr")


def _stored(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """For reuse: the stored record and what is damaged (every file checked, not the per-process cache)."""
    if not os.path.lexists(path):
        return None, []
    try:
        with lease(path) as held:
            problems = check_integrity(held.path)
            return (None if problems else read_version_record(held.path, path.suffix == ".zarr")), problems
    except StoreError as err:
        return None, [str(err)]


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
    plan = _PLAN.get()
    if plan is not None:
        raw, problems = _stored(path)
        fresh = raw is not None and raw.get("fingerprint") == fp and (extra_valid is None or extra_valid(fp))
        status = "fresh" if fresh else ("stale" if raw is not None else ("damaged" if problems else "missing"))
        plan.steps.append(PlannedStep(step, path, status, fp, raw.get("fingerprint") if raw else None))
        record = Record.from_dict(raw, summary_type) if raw is not None else None
        return Outcome(step, path, fp, record.content_hash if record else "", fresh, 0.0,
                       record.summary if record else None)
    with output_lock(path, step):
        clean_leftovers(path)  # of killed writes of this output, and replaced versions no reader holds any more
        raw, problems = _stored(path)
        if raw is not None and raw.get("fingerprint") == fp and (extra_valid is None or extra_valid(fp)):
            record = Record.from_dict(raw, summary_type)
            logger.info("%s: reusing %s (fingerprint %s)", step, path, fp[:12])
            return Outcome(step, path, fp, record.content_hash, True, time.perf_counter() - start, record.summary)
        if problems:
            logger.warning("%s: %s is damaged (%s); recomputing it", step, path, "; ".join(problems[:3]))
        logger.info("%s: computing %s", step, path)
        with atomic_path(path) as tmp:
            content_hash, summary = compute(tmp, fp)
            record = Record(step, version, fp, content_hash, dict(inputs), dict(settings), summary).to_dict()
            if path.suffix == ".zarr":
                zarr.open(store=str(tmp), mode="r+").attrs[RECORD_KEY] = record
            else:
                (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
            write_integrity(tmp)
    seconds = time.perf_counter() - start
    logger.info("%s: wrote %s in %.1f s", step, path, seconds)
    return Outcome(step, path, fp, content_hash, False, seconds, summary)
