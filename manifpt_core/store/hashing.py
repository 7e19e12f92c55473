"""Content hashes and step fingerprints over canonical JSON.

A fingerprint is the cache key of a step's output: a hash of the step's name
and version, the content hashes of its inputs and the settings that change its
result. It is recorded only once the output is complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal settings hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot fingerprint a value of type {type(obj).__name__}: {obj!r}")


def file_hash(path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def text_hash(text: str) -> str:
    """sha256 hex digest of a string."""
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(step: str, version: str, inputs: Mapping[str, str], settings: Mapping[str, Any]) -> str:
    """Cache key of one step's output (see module docstring)."""
    payload = {"step": step, "version": version, "inputs": dict(inputs), "settings": dict(settings)}
    return text_hash(canonical_json(payload))


def array_bytes_hash(array: np.ndarray) -> str:
    """sha256 over an array's dtype, shape and C-ordered bytes."""
    return ArrayHasher().update(array).hexdigest(array.shape)


class ArrayHasher:
    """Streaming hash of an array written block by block along axis 0.

    The digest equals that of the whole array hashed at once, whatever the block
    sizes, because only the bytes (in order), the dtype and the final shape enter it.
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._dtype: str | None = None

    def update(self, block: np.ndarray) -> ArrayHasher:
        block = np.ascontiguousarray(block)
        dtype = block.dtype.str
        if self._dtype is None:
            self._dtype = dtype
        elif dtype != self._dtype:
            raise TypeError(f"block dtype {dtype} differs from earlier blocks' {self._dtype}")
        self._h.update(block.tobytes())
        return self

    def hexdigest(self, shape: tuple[int, ...]) -> str:
        h = self._h.copy()
        h.update(canonical_json({"dtype": self._dtype, "shape": list(shape)}).encode())
        return h.hexdigest()


def combine_hashes(hashes: Mapping[str, str]) -> str:
    """One hash over named hashes (e.g. the arrays of a group)."""
    return text_hash(canonical_json(dict(hashes)))


def rows_hash(images: np.ndarray) -> list[str]:
    """Per-sample content hashes of an (N, ...) uint8 array: sha256 of each row's bytes."""
    images = np.ascontiguousarray(images)
    return [hashlib.sha256(row.tobytes()).hexdigest() for row in images]
