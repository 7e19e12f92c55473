"""Check every stored output against its integrity manifest, and repair what is damaged.

``manifpt verify`` walks a store root: each output (a versioned folder, a Zarr store or a folder with a record)
is checked against its integrity manifest (sizes; CRC-32 too with ``deep``) and its record must be readable;
each Parquet file must open. Leftovers of killed writes and replaced versions are listed. ``repair`` deletes the
damaged outputs and the leftovers no reader holds; the steps then recompute what is missing
(:func:`manifpt_core.steps.pipeline.run_pipeline`), reusing everything that is whole.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from manifpt_core.errors import StoreError
from manifpt_core.store.atomic import clean_leftovers, lease, leftovers_under, remove_paths, sibling_of
from manifpt_core.store.cache import read_version_record
from manifpt_core.store.integrity import check_integrity, has_integrity
from manifpt_core.store.layout import FILE_HASHES_DIR, RECORD_FILE
from manifpt_core.store.locks import LOCK_SUFFIX, output_lock

logger = logging.getLogger(__name__)

OK, DAMAGED, UNVERIFIED = "ok", "damaged", "unverified"


@dataclass(frozen=True)
class Checked:
    """One stored output and what was found: ``ok``, ``damaged`` (with the problems) or ``unverified`` (stored
    before integrity manifests: its record was read, its files not checked)."""

    path: Path
    status: str
    problems: tuple[str, ...] = ()


@dataclass
class Verification:
    """Every output checked under a root, and the leftovers found."""

    root: Path
    outputs: list[Checked] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)

    @property
    def damaged(self) -> list[Checked]:
        return [c for c in self.outputs if c.status == DAMAGED]

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.outputs)


def _is_output(path: Path) -> bool:
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        parsed = sibling_of(target)
        return parsed is not None and parsed[1] == "v"
    if not path.is_dir():
        return False
    return has_integrity(path) or (path / RECORD_FILE).is_file() or (
        path.suffix == ".zarr" and (path / "zarr.json").is_file())


def check_output(path: Path, deep: bool = False) -> Checked:
    """Check one output: its files against its integrity manifest, and its record."""
    try:
        with lease(path) as held:
            problems = check_integrity(held.path, deep)
            if problems:
                return Checked(path, DAMAGED, tuple(problems))
            try:
                record = read_version_record(held.path, path.suffix == ".zarr")
            except StoreError as err:
                return Checked(path, DAMAGED, (f"its record is unreadable ({err})",))
            if record is None:
                return Checked(path, DAMAGED, ("it has no record",))
            return Checked(path, OK if has_integrity(held.path) else UNVERIFIED)
    except StoreError as err:
        return Checked(path, DAMAGED, (str(err),))


def _check_parquet(path: Path) -> Checked:
    try:
        pq.read_metadata(path)
    except Exception as err:  # noqa: BLE001 - any failure to open is the finding, reported with its message
        return Checked(path, DAMAGED, (f"not a readable Parquet file ({type(err).__name__}: {err})",))
    return Checked(path, OK)


def verify_root(root: Path, deep: bool = False) -> Verification:
    """Check every output under ``root`` (a store root, or one dataset's folder)."""
    root = Path(root)
    found = Verification(root, leftovers=leftovers_under(root) if root.is_dir() else [])
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        visible = sorted(d for d in dirnames if not d.startswith("."))
        dirnames[:] = []
        for name in visible + sorted(n for n in filenames if not n.startswith(".")):
            entry = folder / name
            if entry.name == FILE_HASHES_DIR:
                continue
            if _is_output(entry):
                found.outputs.append(check_output(entry, deep))
            elif entry.is_dir() and not entry.is_symlink():
                dirnames.append(name)
            elif entry.suffix == ".parquet" and entry.is_file():
                found.outputs.append(_check_parquet(entry))
    return found


def repair(found: Verification) -> list[Path]:
    """Delete the damaged outputs and the leftovers no reader holds (each under its output's lock); returns what
    was deleted. Recomputing is the steps' work: they find the damaged outputs missing."""
    deleted = []
    for checked in found.damaged:
        with output_lock(checked.path, "verify"):
            deleted += remove_paths([checked.path])
    finals = {leftover.parent / f"{sibling_of(leftover)[0]}" for leftover in found.leftovers}
    for final in sorted(finals):
        if final.name.endswith(LOCK_SUFFIX):
            continue
        with output_lock(final, "verify"):
            deleted += clean_leftovers(final)
    return deleted
