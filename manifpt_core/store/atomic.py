"""Atomic replacement of files and directories (temp name, then rename)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


def temp_sibling(path: Path, tag: str = "tmp") -> Path:
    """A fresh hidden name beside ``path``, on the same filesystem so rename is atomic."""
    return path.parent / f".{path.name}.{tag}-{uuid.uuid4().hex[:12]}"


def replace_path(tmp: Path, final: Path) -> None:
    """Move a complete ``tmp`` file or directory onto ``final``.

    A file is replaced in one atomic rename. A directory that already exists is
    first renamed aside, so a reader sees either the old or the new whole
    directory, never a mix; the old one is deleted afterwards.
    """
    if tmp.is_dir() and final.exists():
        old = temp_sibling(final, "old")
        os.replace(final, old)
        os.replace(tmp, final)
        try:
            shutil.rmtree(old)
        except OSError as err:  # the new output is in place; only disk space is at stake
            logger.warning("could not delete the replaced %s (%s); remove it by hand", old, err)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``final``, on error it is removed.

    Nothing already at ``final`` is touched unless the write completes.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    try:
        yield tmp
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise
    replace_path(tmp, final)


def remove_paths(paths: list[Path]) -> list[Path]:
    """Delete files and directories; each is first renamed aside, so none is ever seen half deleted.

    Returns the paths that existed (and are now gone).
    """
    removed = []
    for path in map(Path, paths):
        if not path.exists():
            continue
        aside = temp_sibling(path, "removed")
        os.replace(path, aside)
        if aside.is_dir():
            shutil.rmtree(aside)
        else:
            aside.unlink()
        removed.append(path)
    return removed
