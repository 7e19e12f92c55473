"""Symbolic links under a folder source or the models folder.

A link whose target stays inside the folder it was found under (its *root*: ``source.path``, or
``models_path``) is an ordinary entry. A link that leads outside is refused, reported and skipped unless the
setting ``follow_symlinks`` is true: a scan that followed it could read another user's files, or, for a link
to ``/``, walk the whole filesystem at every observation.
"""

from __future__ import annotations

import os
from pathlib import Path

FOLLOW_FIX = ("Fix: set follow_symlinks = true to follow links that leave the folder, or replace the link by the "
              "files (or folder) it points to.")


def real(path: str | os.PathLike[str]) -> str:
    """The path with every symbolic link resolved (it need not exist)."""
    return os.path.realpath(path)


def is_inside(target: str, root_real: str) -> bool:
    """Whether the resolved ``target`` is ``root_real`` (resolved) or lies under it."""
    return target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep)


def leaves(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path``, its links resolved, lies outside ``root`` (its links resolved too)."""
    return not is_inside(real(path), real(root))


def refusal(link: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """Why a link that leaves ``root`` is not followed, and the fix."""
    return f"symbolic link {Path(link)} leads to {real(link)}, outside {Path(root)}; it is not followed. {FOLLOW_FIX}"
