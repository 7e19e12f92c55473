"""The integrity manifest of a committed output: every file it holds, with its size and CRC-32.

Written inside the output, last, just before the commit (``.integrity.json``). The cheap check (every file
there, each of its recorded size) runs when an output is reused and when a reader first opens a version; the
deep check also recomputes each file's CRC-32 (``manifpt verify --deep``). A deleted chunk, a truncated
``zarr.json`` or a missing weight file is found by the cheap check; a flipped byte by the deep one.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from manifpt_core.errors import StoreError

INTEGRITY_FILE = ".integrity.json"
FORMAT = "manifpt.integrity/1"
_BLOCK = 1 << 22


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def _files(folder: Path) -> list[Path]:
    found = []
    for dirpath, _, names in os.walk(folder):
        found += [Path(dirpath) / name for name in names]
    return sorted(p for p in found if p.relative_to(folder).as_posix() != INTEGRITY_FILE)


def write_integrity(folder: Path) -> dict[str, Any]:
    """Record every file under ``folder`` (size, CRC-32) in its integrity manifest; returns the manifest."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): [p.stat().st_size, _crc32(p)] for p in _files(folder)}
    manifest = {"format": FORMAT, "files": files}
    tmp = folder / f"{INTEGRITY_FILE}.tmp"
    tmp.write_text(json.dumps(manifest, sort_keys=True))
    os.replace(tmp, folder / INTEGRITY_FILE)
    return manifest


def has_integrity(folder: Path) -> bool:
    return (Path(folder) / INTEGRITY_FILE).is_file()


def damage_error(path: Path, problems: list[str]) -> StoreError:
    """The error a reader or a step gets for a damaged output: what is wrong, and the command that repairs it."""
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    return StoreError(f"{path} is damaged ({shown}); run `manifpt verify --repair` to recompute it")


_WHOLE: set[tuple[str, int]] = set()  # versions this process found whole (a committed version never changes)


def check_once(folder: Path) -> list[str]:
    """:func:`check_integrity`, cheap, remembered per version for this process: readers call it on each open."""
    folder = Path(folder)
    key = (str(folder), os.stat(folder).st_ino)
    if key in _WHOLE:
        return []
    problems = check_integrity(folder)
    if not problems:
        _WHOLE.add(key)
    return problems


def check_integrity(folder: Path, deep: bool = False) -> list[str]:
    """What is wrong with the output in ``folder``: one line per missing, resized, altered or unreadable file
    (empty when it is whole). An output without a manifest (stored before they existed) is not checked."""
    folder = Path(folder)
    manifest_file = folder / INTEGRITY_FILE
    if not manifest_file.is_file():
        return []
    try:
        manifest = json.loads(manifest_file.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"{INTEGRITY_FILE} is unreadable ({err})"]
    problems = []
    for name, (size, crc) in sorted(files.items()):
        path = folder / name
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        if actual != size:
            problems.append(f"{name} has {actual} bytes, {size} were written")
        elif deep and _crc32(path) != crc:
            problems.append(f"{name} has other content than was written (CRC-32 differs)")
    return problems
