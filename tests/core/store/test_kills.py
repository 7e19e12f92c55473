"""A process killed (SIGKILL) while writing any kind of output leaves the previous output whole, and the next
run completes: Zarr stores, the Parquet manifest, torch weights, the FAISS index and the report, each killed in
the middle of writing its data, and a Zarr store killed in the middle of its commit."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
from pathlib import Path

import pytest

from manifpt_core.store import Store
from manifpt_core.store.atomic import leftovers_under
from manifpt_core.store.cache import _stored
from manifpt_core.store.verify import verify_root

SPAWN = mp.get_context("spawn")
MODELS = ["alpha", "beta"]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(case: str) -> None:
    """Patch this (child) process so that it dies at the case's kill point."""
    if case == "zarr store":
        from manifpt_core.store.arrays import RowWriter

        real_write, calls = RowWriter.write, []

        def write(self, block):
            calls.append(1)
            if len(calls) == 3:  # two blocks written, the rest not
                _die()
            real_write(self, block)

        RowWriter.write = write
    elif case == "zarr commit":
        real_symlink = os.symlink

        def symlink(src, dst, *args, **kwargs):  # the new version is in place, the link not yet swapped
            if ".v-" in str(src):
                _die()
            real_symlink(src, dst, *args, **kwargs)

        os.symlink = symlink
    elif case == "parquet manifest":
        import pyarrow.parquet as pq

        def write_table(table, where, *args, **kwargs):
            Path(where).write_bytes(b"PAR1 half a manifest")
            _die()

        pq.write_table = write_table
    elif case == "torch weights":
        import torch

        def save(obj, f, *args, **kwargs):
            f.write(b"half a checkpoint")
            f.flush()
            _die()

        torch.save = save
    elif case == "faiss index":
        import faiss

        def write_index(index, path):
            Path(path).write_bytes(b"half an index")
            _die()

        faiss.write_index = write_index
    elif case == "report":
        real_write_text = Path.write_text

        def write_text(self, data, *args, **kwargs):
            if self.name == "report.md":
                real_write_text(self, data[: len(data) // 2], *args, **kwargs)
                _die()
            return real_write_text(self, data, *args, **kwargs)

        Path.write_text = write_text


def _step(case: str):
    """The step that writes the case's output, with its code version bumped (so it recomputes), and its path."""
    from manifpt_core import steps
    from manifpt_core.steps import attribute, embed, index, ingest, report

    if case.startswith("zarr"):
        embed.EMBED_VERSION += "-next"
        return lambda store, settings: steps.embed_source(store, settings, "rgb", "real")
    if case == "parquet manifest":
        ingest.INGEST_VERSION += "-next"
        return lambda store, settings: steps.ingest_real(store, settings)
    if case == "torch weights":
        attribute.ATTRIBUTOR_VERSION += "-next"
        return lambda store, settings: steps.train_attributors(store, settings, settings.methods[0], MODELS)
    if case == "faiss index":
        index.INDEX_VERSION += "-next"
        return lambda store, settings: steps.build_index(store, settings, "rgb")
    report.REPORT_VERSION += "-next"
    return lambda store, settings: steps.write_report(store, settings, MODELS)


def _child(store_root: str, config: str, case: str, kill: bool) -> None:
    import torch

    from manifpt_core.config import load_settings

    torch.set_num_threads(1)
    settings = load_settings("tiny", config)
    step = _step(case)
    if kill:
        _arm(case)
    step(Store(Path(store_root), settings.dataset), settings)


def _target(store: Store, settings, case: str) -> list[Path]:
    """The outputs the case writes (and must keep whole when killed)."""
    if case.startswith("zarr"):
        return [store.paths.embeddings("rgb", "real")]
    if case == "parquet manifest":
        return [store.paths.images("real"), store.paths.source_manifest("real")]
    if case == "torch weights":
        return [store.method_dir(settings.methods[0])]
    if case == "faiss index":
        return [store.paths.index("rgb")]
    return [store.paths.reports]


def _state(paths: list[Path]) -> list[tuple]:
    """What a reader sees of each output: every file's bytes, through the link."""
    out = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out.append((path, [(f.relative_to(path).as_posix() if path.is_dir() else "", f.read_bytes()) for f in files]))
    return out


def _run(store_root: Path, config: Path, case: str, kill: bool) -> int:
    proc = SPAWN.Process(target=_child, args=(str(store_root), str(config), case, kill))
    proc.start()
    proc.join(timeout=300)
    return proc.exitcode


@pytest.mark.slow
@pytest.mark.parametrize("case", ["zarr store", "zarr commit", "parquet manifest", "torch weights", "faiss index",
                                  "report"])
def test_a_killed_write_leaves_the_previous_output_and_the_next_run_completes(query_store, tmp_path, case):
    home = tmp_path / "home"
    shutil.copytree(query_store.home.path, home, symlinks=True)
    store = Store(home / "store", query_store.settings.dataset)
    targets = _target(store, query_store.settings, case)
    before = _state(targets)

    assert _run(store.root, query_store.config, case, kill=True) == -signal.SIGKILL
    assert _state(targets) == before  # the previous output, whole
    found = verify_root(store.root, deep=True)
    assert found.damaged == []
    assert found.leftovers or case == "parquet manifest"  # the killed write's temporary, not yet cleaned

    assert _run(store.root, query_store.config, case, kill=False) == 0
    recomputed = _stored(targets[0])[0]
    assert recomputed["version"].endswith("-next")  # the next run completed the write the killed one began
    found = verify_root(store.root, deep=True)
    assert found.damaged == [] and leftovers_under(store.root) == []
