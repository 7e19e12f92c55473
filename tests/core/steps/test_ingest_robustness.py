"""Ingestion that one bad folder or file does not stop, and a manifest committed with its image store."""

import os
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from manifpt_core import steps
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError
from manifpt_core.steps import ingest
from manifpt_core.steps.generators import configured_models, model_folder, skipped_model_folders
from manifpt_core.store import Store, manifest_record, open_array
from manifpt_core.store.hashing import rows_hash


def small_settings(root, models_path=None, **overrides):
    """Tiny settings of dataset ``bench`` over the folder benchmark ``root`` (and ``models_path``)."""
    data = {"profile": "test", "dataset": "bench", "n_reference": 120, "n_real_class": 60, "zoo": [],
            "chunk_rows": 16, "block_rows": 32, "device": "cpu", "source": {"kind": "folder", "path": str(root)}}
    if models_path is not None:
        data["models_path"] = str(models_path)
    data.update(overrides)
    return settings_from_dict(data)


def noise(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 12, 12), dtype=np.uint8)


def break_two_files(folder):
    """A truncated PNG and a text file named .png among the folder's images."""
    whole = (folder / "0000.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "text.png").write_text("not an image")


@pytest.fixture
def bench(tmp_path, benchmark_factory, png_writer):
    """A folder benchmark (real, alpha, beta) and a models folder with ``gamma`` (30 images), a badly named
    folder, a link to ``/`` and a link to a folder outside."""
    root = benchmark_factory(tmp_path / "bench")
    models = tmp_path / "models"
    png_writer(models / "gamma", noise(30, 1))
    png_writer(models / "Bad Name", noise(5, 2))
    png_writer(tmp_path / "outside", noise(5, 3))
    os.symlink("/", models / "rootlink")
    os.symlink(tmp_path / "outside", models / "outlink")
    os.symlink("/", root / "slash")
    return root, models


def test_bad_model_folders_are_skipped_and_the_others_ingested(bench, tmp_path):
    root, models = bench
    settings = small_settings(root, models)
    assert configured_models(settings) == ["alpha", "beta", "gamma"]
    skipped = {s.path: s.reason for s in skipped_model_folders(settings)}
    assert sorted(skipped) == [root / "slash", models / "Bad Name", models / "outlink", models / "rootlink"]
    assert "'bad_name'" in skipped[models / "Bad Name"]
    assert all("follow_symlinks = true" in skipped[p] for p in (root / "slash", models / "outlink"))
    with pytest.raises(InputError, match=r"'outlink': its folder is skipped: .*follow_symlinks = true"):
        model_folder(settings, "outlink")
    store = Store(tmp_path / "store", "bench")
    steps.ingest_real(store, settings)
    for model in ("alpha", "gamma"):
        steps.materialize_generator(store, settings, model)
        assert steps.ingest_generated(store, settings, model).summary.n_samples == (60 if model == "alpha" else 30)
    assert "outlink" in configured_models(small_settings(root, models, follow_symlinks=True))


def test_skip_records_every_bad_file_and_error_names_it(bench, tmp_path):
    root, models = bench
    strict = small_settings(root, models)
    # The setting is part of the fingerprint only when it skips, so stores made without it keep theirs.
    clean = Store(tmp_path / "clean", "bench")
    steps.ingest_real(clean, strict)
    assert "on_bad_image" not in clean.real.record.settings
    break_two_files(models / "gamma")
    break_two_files(root / "real" / "small")
    store = Store(tmp_path / "store", "bench")
    with pytest.raises(InputError, match=r"real/small/t\w+\.png: cannot read image.*on_bad_image = \"skip\""):
        steps.ingest_real(store, strict)
    settings = small_settings(root, models, on_bad_image="skip")
    real = steps.ingest_real(store, settings)
    assert {e["path"] for e in real.summary.skipped} == {"real/small/text.png", "real/small/truncated.png"}
    assert real.metadata()["skipped"] == real.summary.skipped
    steps.materialize_generator(store, settings, "gamma")
    with pytest.raises(InputError, match=r"gamma/t\w+\.png: cannot read image.*on_bad_image = \"skip\""):
        steps.ingest_generated(store, strict, "gamma")
    outcome = steps.ingest_generated(store, settings, "gamma")
    expected = {"gamma/text.png", "gamma/truncated.png"}
    assert {e["path"] for e in outcome.summary.skipped} == expected
    assert all("cannot read image" in e["reason"] for e in outcome.summary.skipped)
    for path in (store.paths.images_manifest("gamma"), store.paths.source_manifest("gamma")):
        assert {e["path"] for e in manifest_record(path)["skipped"]} == expected
    assert outcome.summary.n_samples == 30 and store.model("gamma").manifest().num_rows == 30
    assert store.model("gamma").record.settings["on_bad_image"] == "skip"


def test_the_manifest_is_committed_with_its_images_and_published(bench, tmp_path, png_writer, monkeypatch):
    root, models = bench
    settings = small_settings(root, models)
    store = Store(tmp_path / "store", "bench")
    steps.ingest_real(store, settings)
    steps.materialize_generator(store, settings, "gamma")
    outcome = steps.ingest_generated(store, settings, "gamma")
    inner, published = store.paths.images_manifest("gamma"), store.paths.source_manifest("gamma")
    images = open_array(outcome.path)[:]
    for path in (inner, published):
        table = pq.read_table(path)
        assert table.num_rows == len(images) == 30
        assert table.column("content_hash").to_pylist() == rows_hash(images)
        assert manifest_record(path)["fingerprint"] == outcome.fingerprint
        assert manifest_record(path)["content_hash"] == outcome.content_hash
    assert store.model("gamma").manifest().equals(pq.read_table(inner))

    # A published copy that is missing is published again when the step finds its output fresh.
    published.unlink()
    assert steps.ingest_generated(store, settings, "gamma").reused and published.is_file()

    # A failure after compute wrote its manifest, before the commit: neither the manifest nor the images change.
    before = {p: p.read_bytes() for p in (inner, published)}
    png_writer(models / "gamma", noise(40, 4))
    steps.materialize_generator(store, settings, "gamma")

    def fail(*args, **kwargs):
        raise RuntimeError("injected failure before the commit")

    monkeypatch.setattr(ingest, "frechet_to_real", fail)
    with pytest.raises(RuntimeError, match="injected"):
        steps.ingest_generated(store, settings, "gamma")
    assert {p: p.read_bytes() for p in (inner, published)} == before
    np.testing.assert_array_equal(open_array(store.paths.images("gamma"))[:], images)
    assert store.model("gamma").record.content_hash == outcome.content_hash
    monkeypatch.undo()
    again = steps.ingest_generated(store, settings, "gamma")
    assert again.summary.n_samples == 40 and pq.read_table(published).num_rows == 40
    assert manifest_record(inner)["content_hash"] == again.content_hash == manifest_record(published)["content_hash"]


def test_a_store_without_an_inner_manifest_reads_the_published_one(bench, tmp_path):
    root, models = bench
    settings = small_settings(root, models)
    store = Store(tmp_path / "store", "bench")
    steps.ingest_real(store, settings)
    inner = store.paths.images_manifest("real")
    expected = store.real.manifest()
    inner.unlink()  # as an image store written before manifests moved inside it
    assert store.real.manifest().equals(expected)
    assert re.search(r"manifests.real\.parquet", str(store.paths.source_manifest("real")))
