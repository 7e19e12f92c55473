"""Chunked Zarr v3 arrays with provenance records, written block by block."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from manifpt_core.errors import StoreError
from manifpt_core.store.atomic import lease
from manifpt_core.store.hashing import ArrayHasher
from manifpt_core.store.integrity import check_integrity, damage_error

RECORD_KEY = "manifpt"


class RowWriter:
    """Writes an (N, ...) Zarr array in order, in blocks aligned to its chunks, hashing as it goes.

    Writes that straddle chunk boundaries would make two writers race on one
    chunk in parallel settings and are a sign of a bookkeeping bug, so a block
    must start on a chunk boundary and be a whole number of chunks (the last
    block excepted).
    """

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.chunk_rows = array.chunks[0]
        self.rows_written = 0
        self._hasher = ArrayHasher()

    def write(self, block: np.ndarray) -> None:
        start, n_total = self.rows_written, self.array.shape[0]
        stop = start + len(block)
        if block.shape[1:] != self.array.shape[1:]:
            raise StoreError(f"block of shape {block.shape} does not fit array rows of shape {self.array.shape[1:]}")
        if stop > n_total:
            raise StoreError(f"writing rows {start}:{stop} past the end of an array of {n_total} rows")
        if len(block) % self.chunk_rows and stop != n_total:
            raise StoreError(
                f"block of {len(block)} rows at row {start} is not aligned to the chunk size {self.chunk_rows}; "
                f"use a block size that is a multiple of {self.chunk_rows}"
            )
        block = np.ascontiguousarray(block, dtype=self.array.dtype)
        self.array[start:stop] = block
        self._hasher.update(block)
        self.rows_written = stop

    def content_hash(self) -> str:
        if self.rows_written != self.array.shape[0]:
            raise StoreError(f"only {self.rows_written} of {self.array.shape[0]} rows were written")
        return self._hasher.hexdigest(tuple(self.array.shape))


def create_rows(
    root: Path | zarr.Group, name: str | None, shape: tuple[int, ...], dtype: Any, chunk_rows: int
) -> RowWriter:
    """Create an array chunked along axis 0 (as a standalone store, or inside a group) and return its writer."""
    if chunk_rows <= 0:
        raise StoreError(f"chunk_rows must be positive, got {chunk_rows}")
    chunks = (max(1, min(chunk_rows, shape[0])),) + tuple(shape[1:])
    if isinstance(root, zarr.Group):
        array = root.create_array(name=name, shape=shape, chunks=chunks, dtype=dtype)
    else:
        array = zarr.create_array(store=str(root), shape=shape, chunks=chunks, dtype=dtype, zarr_format=3)
    return RowWriter(array)


def hash_rows(array: zarr.Array, block_rows: int) -> str:
    """The content hash of a stored (N, ...) array, read back in blocks: the hash a RowWriter gives the same rows."""
    hasher = ArrayHasher()
    for _, block in iter_blocks(array, block_rows):
        hasher.update(np.asarray(block))
    return hasher.hexdigest(tuple(array.shape))


def aligned_block_rows(block_rows: int, chunk_rows: int) -> int:
    """The largest multiple of ``chunk_rows`` not above ``block_rows`` (at least one chunk)."""
    return max(chunk_rows, (block_rows // chunk_rows) * chunk_rows)


def iter_blocks(array: zarr.Array, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, rows)`` blocks of an (N, ...) array, reading whole chunks at a time."""
    step = aligned_block_rows(block_rows, array.chunks[0])
    for start in range(0, array.shape[0], step):
        yield start, array[start : start + step]


_END = object()


def prefetch(items: Iterable[Any]) -> Iterator[Any]:
    """Yield ``items`` while the next one is produced in a background thread.

    Reading a Zarr block (decompression releases the GIL) then overlaps the
    computation on the block before it; memory holds at most two blocks.
    """
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(next, iterator, _END)
        while (item := pending.result()) is not _END:
            pending = pool.submit(next, iterator, _END)
            yield item


def write_behind(writer: RowWriter, blocks: Iterable[np.ndarray]) -> None:
    """Write ``blocks`` in order, each in a background thread while the next one is computed.

    Compression and the file writes then overlap the computation (an encoder on
    a GPU); memory holds at most two blocks.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as pool:
        pending = None
        for block in blocks:
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write, block)
        if pending is not None:
            pending.result()


def write_record(node: zarr.Array | zarr.Group, record: Mapping[str, Any]) -> None:
    """Store the provenance record (fingerprint, content hash, inputs, settings) in the node's attributes."""
    node.attrs[RECORD_KEY] = dict(record)


def read_record(path: Path) -> dict[str, Any] | None:
    """The provenance record of the Zarr array or group at ``path`` (a version directory a lease resolved, or a
    folder being written); None if nothing complete is there."""
    if not Path(path).exists():
        return None
    try:
        node = zarr.open(store=str(path), mode="r")
    except (FileNotFoundError, ValueError) as err:
        raise StoreError(f"{path} exists but is not a readable Zarr store ({err}); run `manifpt verify --repair` "
                         "to recompute it") from err
    record = node.attrs.get(RECORD_KEY)
    return dict(record) if record is not None else None


def open_array(path: Path, name: str | None = None) -> zarr.Array:
    """Open a stored array (or an array inside a stored group) read-only, with a clear error if missing or damaged.

    The array reads the version of the output that is current now, under a lease held as long as the array
    object lives: a newer version committed meanwhile, or the output removed, does not change what it reads.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise StoreError(f"no array at {path}: materialize the step that writes it first")
    held = lease(path)
    problems = check_integrity(held.path)  # every open: a chunk deleted since must not read as zeros
    if problems:
        held.release()
        raise damage_error(path, problems)
    node = zarr.open(store=str(held.path), mode="r")
    if name is not None:
        node = node[name]
    elif not isinstance(node, zarr.Array):
        held.release()
        raise StoreError(f"{path} is a Zarr group; name one of its arrays: {sorted(node.array_keys())}")
    weakref.finalize(node, held.release)
    return node
