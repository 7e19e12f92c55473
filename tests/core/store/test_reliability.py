"""What the store promises when runs overlap, readers meet writers, processes are killed and files are damaged.

Each promise of the README's "Reliability" section has its test here; the writers run in separate processes
(spawned), since the promises are about processes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from manifpt_core import steps
from manifpt_core.errors import StoreError
from manifpt_core.store import Store, open_array, remove_paths, run_cached
from manifpt_core.store.arrays import create_rows
from manifpt_core.store.atomic import current_version, leftovers_under
from manifpt_core.store.cache import load_record
from manifpt_core.store.records import ArtifactsSummary, EmbeddingsSummary, Summary
from manifpt_core.store.verify import verify_root
from pipelines.cli import main as cli_main

SPAWN = mp.get_context("spawn")
ROWS, CHUNK, DIM = 64, 8, 4


@dataclass(frozen=True)
class Filled(Summary):
    value: float = 0.0


def _write_filled(path: str, value: float, hook=None) -> tuple[bool, str]:
    """run_cached of an (ROWS, DIM) array filled with ``value`` (its setting): (reused, content hash)."""

    def compute(tmp: Path, fp: str):
        writer = create_rows(tmp, None, (ROWS, DIM), np.float32, CHUNK)
        for start in range(0, ROWS, CHUNK):
            if hook is not None:
                hook(start)
            writer.write(np.full((CHUNK, DIM), value, np.float32))
        return writer.content_hash(), Filled(value)

    outcome = run_cached(Path(path), "filled", "1", {}, {"value": value}, compute, Filled)
    return outcome.reused, outcome.content_hash


def _wait_for_all(ready: list[str]):
    def hook(start: int) -> None:
        if start == 0:  # every writer has reached run_cached: the others now wait on the lock, or are about to
            while not all(os.path.exists(r) for r in ready):
                time.sleep(0.01)
            time.sleep(0.3)

    return hook


def _concurrent_writer(path: str, me: str, ready: list[str], out: mp.Queue) -> None:
    Path(me).touch()
    out.put(_write_filled(path, 3.0, _wait_for_all(ready)))


def test_writers_of_one_output_compute_it_once_and_all_succeed(tmp_path):
    path = tmp_path / "out.zarr"
    ready = [str(tmp_path / f"ready{i}") for i in range(3)]
    out = SPAWN.Queue()
    procs = [SPAWN.Process(target=_concurrent_writer, args=(str(path), ready[i], ready, out)) for i in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(reused for reused, _ in results) == [False, True, True]  # computed once, reused twice
    assert len({content_hash for _, content_hash in results}) == 1
    assert np.all(open_array(path)[:] == 3.0)
    assert leftovers_under(tmp_path) == []


def _replacer(path: str, values: list[float]) -> None:
    for value in values:
        _write_filled(path, value)


def test_a_reader_sees_one_whole_version_never_zeros_while_versions_are_committed(tmp_path):
    path = tmp_path / "out.zarr"
    _write_filled(str(path), 1.0)
    values = [float(v) for v in range(2, 42)]
    writer = SPAWN.Process(target=_replacer, args=(str(path), values))
    writer.start()
    seen = set()
    while writer.is_alive() or not seen:
        rows = open_array(path)[:]
        assert len(np.unique(rows)) == 1 and rows[0, 0] != 0, "a reader saw a mix of versions or zeros"
        seen.add(float(rows[0, 0]))
    writer.join(timeout=120)
    assert writer.exitcode == 0
    assert float(open_array(path)[0, 0]) == 41.0
    assert len(seen) > 1  # the reader really overlapped the writer
    # A version still leased when it was replaced is left for the next writer, which deletes it.
    _write_filled(str(path), 42.0)
    assert leftovers_under(tmp_path) == []


def test_an_open_array_keeps_its_version_through_replacement_and_removal(tmp_path):
    path = tmp_path / "out.zarr"
    _write_filled(str(path), 1.0)
    old = open_array(path)
    old_version = current_version(path)
    _write_filled(str(path), 2.0)
    assert np.all(old[:] == 1.0) and np.all(open_array(path)[:] == 2.0)
    assert old_version.is_dir()  # leased by `old`: kept
    newer = open_array(path)
    remove_paths([path])
    with pytest.raises(StoreError, match="no array at"):
        open_array(path)
    assert np.all(newer[:] == 2.0) and np.all(old[:] == 1.0)
    del old, newer
    _write_filled(str(path), 3.0)  # the next writer deletes the versions no reader holds any more
    assert leftovers_under(tmp_path) == []
    assert not old_version.exists()


# ---- damage -------------------------------------------------------------------------------------------------


@pytest.fixture
def damaged_home(query_store, tmp_path):
    """A copy of the materialized query store (versioned outputs kept as links)."""
    home = tmp_path / "home"
    shutil.copytree(query_store.home.path, home, symlinks=True)
    return home


def _cli(home: Path, query_store, *args: str) -> int:
    return cli_main(["verify", "--home", str(home), "--profile", "tiny", "--config", str(query_store.config), *args])


def _damage(path: Path, how: str) -> None:
    version = Path(os.path.realpath(path))
    if how == "chunk deleted":
        chunk = next(p for p in sorted(version.rglob("*")) if p.is_file() and p.parent.name.isdigit())
        chunk.unlink()
    else:  # "zarr.json truncated"
        meta = version / "zarr.json"
        meta.write_bytes(meta.read_bytes()[:40])


@pytest.mark.slow
@pytest.mark.parametrize("how", ["chunk deleted", "zarr.json truncated"])
def test_damage_is_detected_reported_and_recomputed(damaged_home, query_store, capsys, how):
    store = Store(damaged_home / "store", query_store.settings.dataset)
    path = store.paths.embeddings("rgb", "alpha")
    before = load_record(path, EmbeddingsSummary).content_hash
    assert _cli(damaged_home, query_store) == 0
    _damage(path, how)
    with pytest.raises(StoreError, match="manifpt verify --repair"):
        np.asarray(store.model("alpha").embeddings("rgb")[:])  # never zeros, never a half-read
    capsys.readouterr()
    assert _cli(damaged_home, query_store) == 1
    out = capsys.readouterr().out
    assert f"damaged   {path}" in out and "1 damaged" in out
    # The next run recomputes it (the same bits), and reuses everything else.
    outcomes = steps.run_pipeline(store, query_store.settings, ["alpha", "beta"])
    recomputed = [o.path for o in outcomes if not o.reused]
    assert recomputed == [path]
    assert load_record(path, EmbeddingsSummary).content_hash == before
    assert _cli(damaged_home, query_store) == 0
    assert verify_root(damaged_home / "store").leftovers == []


@pytest.mark.slow
def test_verify_repair_recomputes_what_is_damaged(damaged_home, query_store, capsys):
    store = Store(damaged_home / "store", query_store.settings.dataset)
    path = store.paths.artifacts("freq", "beta")
    before = load_record(path, ArtifactsSummary).content_hash
    _damage(path, "chunk deleted")
    assert _cli(damaged_home, query_store, "--repair") == 0
    out = capsys.readouterr().out
    assert "recomputed 1 outputs" in out
    assert load_record(path, ArtifactsSummary).content_hash == before
    assert _cli(damaged_home, query_store, "--deep") == 0
