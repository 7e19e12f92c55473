"""The per-file hash cache: the folder hash it gives equals reading every file, and only changed files are read."""

import hashlib
import logging
import os
import re
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from manifpt_core.sources import folder_content_hash, observe_folder
from manifpt_core.store import file_hashes
from manifpt_core.store.file_hashes import RACY_NS, FileHashCache
from manifpt_core.store.locks import LOCK_SUFFIX


@pytest.fixture
def folder(tmp_path, file_ager) -> Path:
    """24 files of seeded random bytes and sizes, in the folder and a subfolder, modified an hour ago."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for i in range(24):
        path = root / ("sub" if i % 3 == 0 else "") / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.integers(0, 256, int(rng.integers(10, 3000)), dtype=np.uint8).tobytes())
    file_ager(root)
    return root


@pytest.fixture
def cache(tmp_path) -> FileHashCache:
    return FileHashCache.in_store(tmp_path / "home" / "store")


def read_every_file(folder: Path) -> str:
    """The folder hash as defined, by reading every file: sha256 over "relative path NUL sha256 newline"."""
    files = sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*.png"))
    text = "".join(f"{rel}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for rel, p in files)
    return hashlib.sha256(text.encode()).hexdigest()


def set_back(path: Path, seconds: int) -> None:
    """Move a file's modification time ``seconds`` earlier (a time it never had, and not recent)."""
    mtime = path.stat().st_mtime_ns - seconds * 10**9
    os.utime(path, ns=(mtime, mtime))


def test_the_cached_hash_equals_reading_every_file(folder, cache, file_reads):
    expected = read_every_file(folder)
    assert folder_content_hash(folder) == expected  # no cache: today's hash
    first, second = observe_folder(folder, cache), observe_folder(folder, cache)
    assert first.content_hash == second.content_hash == expected
    assert (first.n_files, first.n_read, second.n_read) == (24, 24, 0)


def test_an_unchanged_file_is_not_read_again(folder, cache, file_reads):
    observe_folder(folder, cache)
    assert len(file_reads) == 24
    file_reads.clear()
    observed = observe_folder(folder, cache)
    assert file_reads == [] and observed.n_cached == 24
    assert observed.metadata() == {"files": 24, "files_read": 0, "files_from_cache": 24}


@pytest.mark.parametrize("same_size", [False, True])
def test_a_modified_file_is_read_again_and_changes_the_hash(folder, cache, file_reads, same_size):
    before = observe_folder(folder, cache).content_hash
    path = folder / "sub" / "003.png"
    data = path.read_bytes()
    path.write_bytes(bytes(255 - b for b in data) if same_size else data + b"more")
    set_back(path, 60)  # an older time than now, still distinct from the recorded one
    file_reads.clear()
    after = observe_folder(folder, cache)
    assert file_reads == ["003.png"] and after.content_hash != before
    assert after.content_hash == read_every_file(folder)


def test_a_touched_file_is_read_again_and_keeps_the_hash(folder, cache, file_reads):
    before = observe_folder(folder, cache).content_hash
    set_back(folder / "005.png", 120)
    file_reads.clear()
    after = observe_folder(folder, cache)
    assert file_reads == ["005.png"] and after.content_hash == before
    file_reads.clear()
    assert observe_folder(folder, cache).content_hash == before and file_reads == []  # and it is recorded again


@pytest.mark.parametrize("after_mtime, cached", [(RACY_NS // 2, False), (-RACY_NS, False), (RACY_NS + 1, True)])
def test_a_file_hashed_within_2_s_of_its_modification_is_not_recorded(folder, cache, file_reads, monkeypatch,
                                                                      after_mtime, cached):
    """The clock of the cache module is set to ``after_mtime`` ns after the file's modification time (a negative
    value: a modification time in the future, as with a file server whose clock is ahead)."""
    path = folder / "007.png"
    path.write_bytes(b"written just now")
    mtime = path.stat().st_mtime_ns
    clock = types.SimpleNamespace(time_ns=lambda: mtime + after_mtime)
    monkeypatch.setattr(file_hashes, "time", clock)
    observe_folder(folder, cache)
    file_reads.clear()
    observed = observe_folder(folder, cache)
    assert file_reads == ([] if cached else ["007.png"]) and observed.content_hash == read_every_file(folder)


def test_a_file_that_changes_while_it_is_read_is_not_recorded(folder, cache, file_reads, monkeypatch):
    counting = file_hashes.file_hash

    def read_while_touched(path):
        digest = counting(path)
        if Path(path).name == "010.png":
            set_back(Path(path), 30)
        return digest

    monkeypatch.setattr(file_hashes, "file_hash", read_while_touched)
    observe_folder(folder, cache)
    file_reads.clear()
    observe_folder(folder, cache)
    assert file_reads == ["010.png"]


def _cache_files(cache):
    """The cache's files, without the lock files of their writers."""
    return [p for p in cache.directory.iterdir() if not p.name.endswith(LOCK_SUFFIX)]


@pytest.mark.parametrize("corrupt", ["truncated", "garbage", "a digest edited", "another folder's", "not json"])
def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(folder, cache, file_reads, caplog, corrupt):
    expected = observe_folder(folder, cache).content_hash
    (cache_file,) = _cache_files(cache)
    raw = cache_file.read_bytes()
    header, body = raw.split(b"\n", 1)
    digest = re.search(rb"[0-9a-f]{64}", body).group()  # the first entry's sha256
    cache_file.write_bytes({
        "truncated": raw[: len(raw) // 2],
        "garbage": bytes(range(256)) * 4,
        "a digest edited": header + b"\n" + body.replace(digest, b"0" * 64),
        "another folder's": header.replace(str(folder.resolve()).encode(), b"/elsewhere") + b"\n" + body,
        "not json": b"{}\n[1, 2",
    }[corrupt])
    file_reads.clear()
    with caplog.at_level(logging.WARNING, logger=file_hashes.__name__):
        observed = observe_folder(folder, cache)
    assert observed.content_hash == expected and len(file_reads) == 24
    assert "corrupt" in caplog.text and str(cache_file) in caplog.text
    file_reads.clear()
    assert observe_folder(folder, cache).content_hash == expected and file_reads == []  # rebuilt


def test_deep_reads_every_file_and_refreshes_the_cache(folder, cache, file_reads, monkeypatch):
    expected = read_every_file(folder)
    counting = file_hashes.file_hash
    monkeypatch.setattr(file_hashes, "file_hash", lambda path: "f" * 64)  # a bad read, now in the cache
    assert observe_folder(folder, cache).content_hash != expected
    monkeypatch.setattr(file_hashes, "file_hash", counting)
    assert observe_folder(folder, cache).content_hash != expected and file_reads == []  # what --deep is for
    deep = observe_folder(folder, FileHashCache(cache.directory, deep=True))
    assert deep.content_hash == expected and deep.n_read == 24 and len(file_reads) == 24
    file_reads.clear()
    assert observe_folder(folder, cache).content_hash == expected and file_reads == []


def test_concurrent_observers_leave_a_valid_cache(folder, cache, caplog):
    with caplog.at_level(logging.WARNING, logger=file_hashes.__name__), ThreadPoolExecutor(4) as pool:
        hashes = set(pool.map(lambda _: observe_folder(folder, cache).content_hash, range(8)))
    assert hashes == {read_every_file(folder)} and caplog.text == ""
    assert observe_folder(folder, cache).n_read == 0


def test_the_cache_lives_in_the_store_not_in_the_image_folder(folder, cache, tmp_path):
    before = sorted(folder.rglob("*"))
    observe_folder(folder, cache)
    assert sorted(folder.rglob("*")) == before
    assert [p.parent for p in _cache_files(cache)] == [tmp_path / "home" / "store" / ".file_hashes"]
