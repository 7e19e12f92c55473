"""Atomic replacement of files and directories, and read leases on what is replaced.

A file is written under a temporary name and renamed onto its final name. A directory output is never
replaced in place: each committed version is a hidden sibling directory (``.<name>.v-<id>``) and the final
name is a relative symbolic link to the current one, swapped in one atomic rename. A reader resolves the link
once and takes a *lease* (a shared ``flock`` on the version directory) for as long as it reads, so it sees the
version it opened, whole, even while a newer one is committed or the output is removed. A replaced or removed
version is deleted as soon as no lease holds it; one still leased is left as a leftover that the next writer of
the output (or ``manifpt verify --repair``) deletes once it is free.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from manifpt_core.errors import StoreError
from manifpt_core.store.locks import output_lock

logger = logging.getLogger(__name__)

# Hidden siblings of an output: a write in progress (tmp), versions (v), a link being swapped in (link), and the
# names older code used for replaced or removed directories (old, removed).
LEFTOVER_TAGS = ("tmp", "v", "link", "old", "removed")
_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<tag>tmp|v|link|old|removed)-[0-9a-f]{12}$")
_LEASE_ATTEMPTS = 20


def temp_sibling(path: Path, tag: str = "tmp") -> Path:
    """A fresh hidden name beside ``path``, on the same filesystem so rename is atomic."""
    return path.parent / f".{path.name}.{tag}-{uuid.uuid4().hex[:12]}"


def sibling_of(entry: Path) -> tuple[str, str] | None:
    """``(output name, tag)`` when ``entry`` is a hidden sibling made by this module, else None."""
    match = _SIBLING.match(entry.name)
    return (match["name"], match["tag"]) if match else None


def current_version(final: Path) -> Path | None:
    """The version directory ``final`` links to (None when ``final`` is not a versioned output)."""
    if not final.is_symlink():
        return None
    return final.parent / os.readlink(final)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_path(tmp: Path, final: Path) -> None:
    """Make the complete ``tmp`` file or directory the content of ``final``, atomically.

    A file is renamed onto ``final``. A directory becomes a new version and ``final`` a link to it, swapped in
    one rename: a reader opens the old version or the new one, never a mix and never nothing. The replaced
    version is deleted unless a reader still leases it.
    """
    if not tmp.is_dir():
        os.replace(tmp, final)
        return
    version = temp_sibling(final, "v")
    os.rename(tmp, version)
    old = current_version(final)
    if final.is_dir() and not final.is_symlink():  # a folder stored before outputs were versioned
        old = temp_sibling(final, "v")
        os.rename(final, old)
    link = temp_sibling(final, "link")
    os.symlink(version.name, link)
    os.replace(link, final)
    _fsync_dir(final.parent)
    if old is not None and old != version:
        release_version(old)


def release_version(version: Path) -> bool:
    """Delete a version directory no reader leases; True when it is gone. A leased one is left in place (a
    leftover the next writer of its output deletes)."""
    try:
        fd = os.open(version, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("%s is still being read; it is deleted once free", version)
            return False
        # Renamed while locked: a reader that resolved this name before sees it gone and resolves again.
        parsed = sibling_of(version)
        doomed = version.parent / f".{parsed[0] if parsed else version.name}.removed-{uuid.uuid4().hex[:12]}"
        os.rename(version, doomed)
        shutil.rmtree(doomed)
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path, lock: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``final``, on error it is removed.

    Nothing already at ``final`` is touched unless the write completes. A write into the store holds the
    output's lock, so two writers of one path take turns, and the first deletes what killed writes of it left
    behind; ``lock=False`` for files written into a user's folder (exports), where no lock file should appear.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Inside an output being written (a file of a temporary folder) the folder's writer is the only one.
    inside_write = any((parsed := sibling_of(parent)) is not None and parsed[1] == "tmp" for parent in final.parents)
    with contextlib.nullcontext(False) if inside_write or not lock else output_lock(final) as first:
        if first:
            clean_leftovers(final)
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


class Lease:
    """A shared lock on one version of an output, held while it is read (see :func:`lease`)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def lease(path: Path) -> Lease:
    """Lease the version of the output at ``path`` that is current now; ``Lease.path`` is the directory to read.

    While the lease is held that directory stays whole, whatever is committed to or removed from ``path``. A
    missing output is a StoreError naming it.
    """
    path = Path(path)
    for _ in range(_LEASE_ATTEMPTS):
        target = Path(os.path.realpath(path))
        try:
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            if not path.is_symlink():
                raise StoreError(f"nothing stored at {path}: materialize the step that writes it first") from None
            continue  # the version was replaced between readlink and open: resolve again
        except NotADirectoryError:
            raise StoreError(f"{path} is a file, not a stored output folder; delete it to recompute") from None
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            same = os.stat(target).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return Lease(target, fd)
        os.close(fd)  # deleted or replaced before the lock was ours: resolve again
    raise StoreError(f"{path} was replaced {_LEASE_ATTEMPTS} times while being opened; try again")


def is_leased(version: Path) -> bool:
    """Whether a reader (in any process, this one included) leases the version directory."""
    try:
        fd = os.open(version, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def leftovers(final: Path) -> list[Path]:
    """Hidden siblings of ``final`` left by writes that did not finish or versions no longer current."""
    folder = final.parent
    if not folder.is_dir():
        return []
    current = current_version(final)
    found = []
    for entry in folder.iterdir():
        parsed = sibling_of(entry)
        if parsed is not None and parsed[0] == final.name and entry != current:
            found.append(entry)
    return sorted(found)


def clean_leftovers(final: Path) -> list[Path]:
    """Delete the leftovers of ``final`` that no reader leases; returns those deleted. Call it only while
    holding the output's lock (:func:`manifpt_core.store.locks.output_lock`): a write in progress is a leftover
    too, to anyone but its writer."""
    removed = []
    for entry in leftovers(Path(final)):
        if entry.is_symlink() or entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
        elif release_version(entry):
            removed.append(entry)
    if removed:
        logger.info("%s: deleted %d leftovers of unfinished or replaced writes", final, len(removed))
    return removed


def remove_paths(paths: list[Path]) -> list[Path]:
    """Delete outputs (files, versioned or plain directories); none is ever seen half deleted, and a version a
    reader still leases is deleted once it is free.

    Returns the paths that existed (and are now gone).
    """
    removed = []
    for path in map(Path, paths):
        if not os.path.lexists(path):
            continue
        with output_lock(path, "remove"):  # not while a writer of the path commits
            if not os.path.lexists(path):
                continue
            version = current_version(path)
            aside = temp_sibling(path, "removed")
            os.replace(path, aside)
            if aside.is_symlink() or aside.is_file():
                aside.unlink()
            else:
                version = aside
            if version is not None:
                release_version(version)
        removed.append(path)
    return removed


def leftovers_under(root: Path) -> list[Path]:
    """Every leftover (see :func:`leftovers`) anywhere under ``root``: what ``manifpt verify`` reports."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        current = set()
        for name in dirnames + filenames:
            entry = folder / name
            if entry.is_symlink() and sibling_of(entry) is None:
                current.add(current_version(entry))
        for name in dirnames + filenames:
            entry = folder / name
            if sibling_of(entry) is not None and entry not in current:
                found.append(entry)
        dirnames[:] = [d for d in dirnames if sibling_of(folder / d) is None or folder / d in current]
    return sorted(found)
