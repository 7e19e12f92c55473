"""Per-file content hashes kept between observations, so that observing an unchanged folder reads no image.

A folder's data version is a hash over the sha256 of each of its files. Reading every byte at every
observation costs hundreds of GB an hour at the paper's size, so the sha256 of each file is recorded with its
size, modification time and status-change time (ns); a file whose three values are unchanged is not read again.
The hash is the same as reading every file: only the cost changes.

A file modified within the same timestamp tick as its hashing, with the same size, would keep its stat values
("racy" file, as git calls it): a file whose modification time is less than :data:`RACY_NS` before the moment
it was hashed is never recorded, nor one whose stat changed while it was read; it is read again next time.

One cache file per folder, under ``<store root>/.file_hashes/`` (``layout.file_hashes_dir``), named by the
folder's resolved path and keyed by each file's path inside it. It is replaced atomically; two observers of one
folder lose at most one another's new entries (a re-read next time). A cache file that cannot be read, or fails
its checksum, is logged and rebuilt, never used. Deleting the folder ``.file_hashes`` is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from manifpt_core.store.atomic import atomic_path
from manifpt_core.store.hashing import file_hash, text_hash
from manifpt_core.store.layout import file_hashes_dir

logger = logging.getLogger(__name__)

CACHE_FORMAT = "manifpt.file_hashes/1"
RACY_NS = 2_000_000_000  # coarser than the timestamp tick of every common filesystem (FAT's is 2 s)
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileHashCache:
    """Where the per-folder caches live and whether to ignore them (``deep``: every file is read again and its
    folder's cache rewritten from what was read)."""

    directory: Path
    deep: bool = False

    @classmethod
    def in_store(cls, store_root: str | os.PathLike[str], deep: bool = False) -> FileHashCache:
        """The caches of the store at ``store_root``."""
        return cls(file_hashes_dir(store_root), deep)

    def file_for(self, folder: Path) -> Path:
        """The cache file of a folder, given by its resolved path."""
        return self.directory / f"{text_hash(str(folder))[:32]}.json"


@dataclass(frozen=True)
class Observation:
    """A content hash over files and its cost: files hashed, and how many of them were read (the others'
    hashes came from the cache)."""

    content_hash: str
    n_files: int
    n_read: int

    @property
    def n_cached(self) -> int:
        return self.n_files - self.n_read

    def metadata(self) -> dict[str, int]:
        """The counts, as recorded with an observation."""
        return {"files": self.n_files, "files_read": self.n_read, "files_from_cache": self.n_cached}


def hash_files(folder: str | os.PathLike[str], names: Sequence[str],
               cache: FileHashCache | None) -> tuple[list[str], int]:
    """The sha256 of each file of ``folder`` named in ``names`` (POSIX paths relative to it), in order, and how
    many files were read. With no ``cache`` every file is read and nothing is recorded."""
    resolved = Path(folder).resolve()
    cache_file = cache.file_for(resolved) if cache is not None else None
    known = _load(cache_file, resolved) if cache_file is not None and not cache.deep else {}
    entries: dict[str, list] = {}
    digests, n_read = [], 0
    for name in names:
        path = os.path.join(folder, name)  # strings, not Paths: this loop runs once per image, hourly
        stat = _stat_key(path)
        entry = known.get(name)
        if entry is not None and entry[:3] == stat:
            entries[name] = entry
        else:
            entry = [*stat, file_hash(path)]
            n_read += 1
            if _settled(path, stat):
                entries[name] = entry
        digests.append(entry[3])
    if cache_file is not None and entries != known:
        _save(cache_file, resolved, entries)
    return digests, n_read


def _settled(path: str, stat: list[int]) -> bool:
    """Whether a file just read may be recorded: unchanged while it was read, and modified long enough before
    now that a later change cannot share its timestamp."""
    return _stat_key(path) == stat and time.time_ns() - stat[1] >= RACY_NS


def _stat_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _load(path: Path, folder: Path) -> dict[str, list]:
    """The entries of a cache file; empty, with a warning, when it is unreadable or not this folder's."""
    try:
        header, _, body = path.read_bytes().partition(b"\n")
    except FileNotFoundError:
        return {}
    except OSError as err:
        logger.warning("file hash cache %s cannot be read (%s): every file of %s is read again and the cache "
                       "rewritten", path, err, folder)
        return {}
    try:
        head = json.loads(header)
        if head != {"format": CACHE_FORMAT, "folder": str(folder), "sha256": hashlib.sha256(body).hexdigest()}:
            raise ValueError(f"header {header[:200]!r} is not this folder's, or the entries fail their checksum")
        entries = json.loads(body)
        if not isinstance(entries, dict) or not all(_valid(e) for e in entries.values()):
            raise ValueError("an entry is not [size, mtime_ns, ctime_ns, sha256]")
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        logger.warning("file hash cache %s is corrupt (%s): every file of %s is read again and the cache rebuilt",
                       path, err, folder)
        return {}
    return entries


def _valid(entry) -> bool:
    return (isinstance(entry, list) and len(entry) == 4 and all(type(v) is int for v in entry[:3])
            and isinstance(entry[3], str) and _DIGEST.fullmatch(entry[3]) is not None)


def _save(path: Path, folder: Path, entries: dict[str, list]) -> None:
    body = json.dumps(entries, separators=(",", ":"), sort_keys=True).encode()
    header = json.dumps({"format": CACHE_FORMAT, "folder": str(folder), "sha256": hashlib.sha256(body).hexdigest()})
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(header.encode() + b"\n" + body)
    except OSError as err:  # the hash is right either way; only the next observation's time is at stake
        logger.warning("could not write the file hash cache %s (%s): the next observation of %s reads every file "
                       "again", path, err, folder)
