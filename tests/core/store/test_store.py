"""The store: block-size-invariant hashes, chunk-aligned writes, atomic commits, deterministic splits."""

import numpy as np
import pytest

from manifpt_core.errors import StoreError
from manifpt_core.store import (
    ArrayHasher,
    array_bytes_hash,
    assign_splits,
    atomic_path,
    create_rows,
    fingerprint,
    open_array,
)
from manifpt_core.store.atomic import current_version, leftovers_under
from manifpt_core.store.locks import lock_file


def test_streamed_hash_does_not_depend_on_block_size():
    x = np.random.default_rng(0).standard_normal((37, 5)).astype(np.float32)
    whole = array_bytes_hash(x)
    for step in (1, 4, 36, 37):
        h = ArrayHasher()
        for s in range(0, len(x), step):
            h.update(x[s : s + step])
        assert h.hexdigest(x.shape) == whole
    assert array_bytes_hash(x.astype(np.float64)) != whole
    assert array_bytes_hash(x.reshape(5, 37)) != whole


def test_fingerprint_is_canonical_and_sensitive():
    a = fingerprint("s", "1", {"x": "h1", "y": "h2"}, {"k": 1, "m": [1, 2]})
    b = fingerprint("s", "1", {"y": "h2", "x": "h1"}, {"m": [1, 2], "k": 1})
    assert a == b
    assert a != fingerprint("s", "2", {"x": "h1", "y": "h2"}, {"k": 1, "m": [1, 2]})
    assert a != fingerprint("s", "1", {"x": "h1", "y": "h3"}, {"k": 1, "m": [1, 2]})
    assert a != fingerprint("s", "1", {"x": "h1", "y": "h2"}, {"k": 2, "m": [1, 2]})


def test_row_writer_refuses_unaligned_blocks(tmp_path):
    writer = create_rows(tmp_path / "a.zarr", None, (10, 2), np.float32, 4)
    with pytest.raises(StoreError, match="not aligned to the chunk size 4"):
        writer.write(np.zeros((3, 2)))
    writer.write(np.zeros((8, 2)))
    writer.write(np.ones((2, 2)))  # the last block may be partial
    assert open_array(tmp_path / "a.zarr")[:].sum() == 4
    with pytest.raises(StoreError, match="past the end"):
        writer.write(np.ones((1, 2)))


def test_incomplete_array_has_no_content_hash(tmp_path):
    writer = create_rows(tmp_path / "a.zarr", None, (10, 2), np.float32, 4)
    writer.write(np.zeros((4, 2)))
    with pytest.raises(StoreError, match="only 4 of 10 rows"):
        writer.content_hash()


def test_atomic_path_keeps_the_old_output_when_a_write_fails(tmp_path):
    final = tmp_path / "out"
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "data").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "data").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (final / "data").read_text() == "old"
    # no temporary left behind: the output and its current version only
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", current_version(final).name, lock_file(final).name])
    assert leftovers_under(tmp_path) == []
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "data").write_text("new")
    assert (final / "data").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", current_version(final).name, lock_file(final).name])


def test_splits_are_exact_deterministic_and_order_free():
    ids = [f"src/{i}" for i in range(1000)]
    splits = assign_splits(ids)
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (700, 200, 100)
    shuffled = list(reversed(ids))
    again = dict(zip(shuffled, assign_splits(shuffled)))
    assert all(again[i] == s for i, s in zip(ids, splits))
