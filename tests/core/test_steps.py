"""The pipeline's steps end to end on a small folder benchmark, checked against brute force."""

import json

import numpy as np
import pytest

from manifpt_core import steps
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError
from manifpt_core.store import Store, open_array

MODELS = ["alpha", "beta"]


def folder_settings(root, **overrides):
    data = {
        "profile": "test",
        "dataset": "bench",
        "source": {"kind": "folder", "path": str(root)},
        "n_reference": 120,
        "n_real_class": 60,
        "zoo": [],
        "attributor": {"epochs": 8, "patience": 8, "batch_size": 16, "widths": [8, 16]},
        "chunk_rows": 16,
        "block_rows": 32,
        "device": "cpu",
    }
    data.update(overrides)
    return settings_from_dict(data)


def run_all(store, settings):
    outcomes = [steps.ingest_real(store, settings)]
    for model in MODELS:
        outcomes += [steps.materialize_generator(store, settings, model), steps.ingest_generated(store, settings, model)]
    for space in settings.spaces:
        outcomes += [steps.embed_source(store, settings, space, s) for s in ["real", *MODELS]]
        outcomes.append(steps.build_index(store, settings, space))
        outcomes += [steps.materialize_artifacts(store, settings, space, s) for s in ["real", *MODELS]]
    for space in [*settings.spaces, steps.RAW]:
        outcomes.append(steps.train_attributors(store, settings, space, MODELS))
    outcomes.append(steps.write_report(store, settings, MODELS))
    return outcomes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from tests.conftest import make_benchmark

    root = make_benchmark(tmp_path_factory.mktemp("bench"))
    settings = folder_settings(root)
    store = Store(tmp_path_factory.mktemp("store"), "bench")
    return root, settings, store, run_all(store, settings)


def test_real_split_is_disjoint_reference_first(built):
    _, settings, store, outcomes = built
    real = outcomes[0].summary
    assert real["n_reference"] == 120 and real["n_real_class"] == 60
    table = __import__("pyarrow.parquet", fromlist=["x"]).read_table(store.source_manifest("real")).to_pydict()
    assert table["split"][:120] == ["reference"] * 120
    assert set(table["split"][120:]) == {"train", "val", "test"}
    assert not set(table["content_hash"][:120]) & set(table["content_hash"][120:])
    assert len(set(table["path"])) == 180


@pytest.mark.parametrize("space", ["rgb", "freq"])
@pytest.mark.parametrize("source", ["real", "alpha"])
def test_stored_artifacts_equal_brute_force(built, space, source):
    _, _, store, _ = built
    n_ref = 120
    real_emb = open_array(store.embeddings(space, "real"))[:]
    reference = real_emb[:n_ref]
    queries = real_emb[n_ref:] if source == "real" else open_array(store.embeddings(space, source))[:]
    d2 = ((queries[:, None, :].astype(np.float64) - reference[None]) ** 2).sum(-1)
    expected_id = d2.argmin(1)
    path = store.artifacts(space, source)
    np.testing.assert_array_equal(open_array(path, "nn_id")[:], expected_id)
    np.testing.assert_array_equal(open_array(path, "artifact")[:], queries - reference[expected_id])
    np.testing.assert_allclose(open_array(path, "nn_dist")[:], np.sqrt(d2.min(1)), rtol=1e-5)
    rows = open_array(path, "query_row")[:]
    if source == "real":  # real class rows only, and never a reference row as its own neighbour
        np.testing.assert_array_equal(rows, np.arange(n_ref, 180))
        assert np.all(open_array(path, "nn_id")[:] < n_ref)


def test_second_materialization_reuses_the_store(built):
    _, settings, store, first = built
    second = run_all(store, settings)
    assert all(o.reused for o in second)
    assert [o.content_hash for o in second] == [o.content_hash for o in first]
    assert sum(o.seconds for o in second) < 0.5 * sum(o.seconds for o in first)


def test_chunk_and_block_size_do_not_change_results(built, tmp_path):
    root, _, store, first = built
    other = Store(tmp_path, "bench")
    settings = folder_settings(root, chunk_rows=8, block_rows=8)
    steps.ingest_real(other, settings)
    for model in MODELS:
        steps.materialize_generator(other, settings, model)
        steps.ingest_generated(other, settings, model)
    for source in ["real", "alpha"]:
        steps.embed_source(other, settings, "freq", source)
    steps.build_index(other, settings, "freq")
    for source in ["real", "alpha"]:
        a = steps.materialize_artifacts(other, settings, "freq", source)
        assert open_array(a.path, "artifact").chunks[0] == 8
        b = store.artifacts("freq", source)
        assert a.content_hash == steps.load_record(b)["content_hash"]
        np.testing.assert_array_equal(open_array(a.path, "artifact")[:], open_array(b, "artifact")[:])


def test_report_has_every_entry(built):
    _, settings, store, _ = built
    report = json.loads((store.reports / "report.json").read_text())
    methods = [row["method"] for row in report["main_table"]]
    assert methods == ["artifacts (rgb)", "artifacts (freq)", "raw-image control"]
    assert report["classes"] == ["real", "alpha", "beta"]
    for row in report["main_table"]:
        assert 0.0 <= row["accuracy_mean"] <= 1.0
        assert np.asarray(row["confusion"]).sum() == row["n_test"] > 0
        assert (store.reports / row["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (store.reports / "report.md").read_text()
    assert "artifacts (rgb)" in md and "raw-image control" in md and "figures/confusion_freq.png" in md
    # the planted checkerboard/stripes make the artifacts attributable far above chance (1/3)
    assert report["main_table"][0]["accuracy_mean"] > 0.6


def test_corrupt_image_names_the_file_and_keeps_the_store(built, tmp_path):
    root, settings, store, _ = built
    before = steps.load_record(store.images("alpha"))
    (root / "alpha" / "9999.png").write_bytes(b"not a png at all")
    try:
        steps.materialize_generator(store, settings, "alpha")
        with pytest.raises(InputError, match="9999.png"):
            steps.ingest_generated(store, settings, "alpha")
    finally:
        (root / "alpha" / "9999.png").unlink()
    assert steps.load_record(store.images("alpha")) == before
    assert open_array(store.images("alpha")).shape[0] == 60


def test_mixed_sizes_across_sources_are_refused(built, tmp_path):
    from tests.conftest import make_benchmark

    root = make_benchmark(tmp_path / "b2", size=12)
    make_benchmark(tmp_path / "b3", size=16)
    (root / "beta").rename(tmp_path / "old-beta")
    (tmp_path / "b3" / "beta").rename(root / "beta")
    settings = folder_settings(root)
    store = Store(tmp_path / "s", "bench")
    steps.ingest_real(store, settings)
    steps.materialize_generator(store, settings, "beta")
    with pytest.raises(InputError, match="source.resize"):
        steps.ingest_generated(store, settings, "beta")
    assert not store.images("beta").exists()


def test_unknown_model_names_the_fix(built):
    _, settings, store, _ = built
    with pytest.raises(InputError, match="neither a zoo entry"):
        steps.materialize_generator(store, settings, "gamma")
