"""Inter-process locks on outputs: one writer at a time per output, the others wait and then reuse its work.

A lock is an exclusive ``flock`` on a hidden file beside the output (``.<name>.lock``). The kernel releases it
when its holder exits, however it exits, so a killed run never leaves an output locked. Lock files are never
deleted (deleting one while another process waits on it would let two writers in).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
_HELD = threading.local()  # the lock files this thread holds: taking one again is a no-op


def lock_file(path: Path) -> Path:
    """The lock file of the output at ``path``."""
    path = Path(path)
    return path.parent / f".{path.name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def output_lock(path: Path, what: str = "") -> Iterator[bool]:
    """Hold the exclusive lock of the output at ``path``; wait (saying so) while another process or thread holds
    it. Re-entrant within a thread; yields True to the outermost holder only."""
    file = lock_file(path)
    held = _HELD.__dict__.setdefault("files", set())
    if file in held:
        yield False
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("%s: another process is writing %s; waiting for it", what or "store", path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(file)
        try:
            yield True
        finally:
            held.discard(file)
    finally:
        os.close(fd)
