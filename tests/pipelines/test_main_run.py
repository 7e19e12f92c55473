"""The main job through Dagster, into a temp home, on a small folder benchmark; then again, warm."""

import json

import dagster as dg
import pytest

from pipelines.cli import main

ALL_ASSETS = {
    f"bench/{name}" for name in (
        "real_images", "generator", "generated_images", "embedding_space", "real_embeddings", "generated_embeddings",
        "reference_index", "real_artifacts", "generated_artifacts", "attributor", "raw_control", "baseline",
        "robustness", "attribution_report", "feature_table",
    )
}


def materializations(instance):
    """(asset name, materialization) for every materialization the instance recorded."""
    out = []
    for key in instance.get_asset_keys():
        events = instance.fetch_materializations(key, limit=1000).records
        out += [(key.to_user_string(), e.asset_materialization) for e in events]
    return out


@pytest.mark.slow
def test_main_run_materializes_everything_then_reuses(tmp_path, monkeypatch, capsys, config_writer):
    for var in ("MANIFPT_HOME", "MANIFPT_PROFILE", "MANIFPT_CONFIG", "MANIFPT_DEVICE", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    config = config_writer(tmp_path)
    home = tmp_path / "home"
    args = ["run", "--profile", "tiny", "--config", str(config), "--home", str(home), "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    report = home / "store" / "bench" / "reports" / "report.md"
    assert f"report at {report}" in out
    assert report.is_file()
    assert json.loads((report.parent / "report.json").read_text())["classes"] == ["real", "alpha", "beta"]
    assert (home / "store" / "bench" / "features" / "samples.parquet").is_file()

    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    first = materializations(instance)
    assert {name for name, _ in first} == ALL_ASSETS
    # 1 real + 2x2 per model + 4x4 per space + 2x2x4 per model and space + 4 attributors + 6 baselines
    # + control + robustness + report + feature table
    assert len(first) == 1 + 4 + 16 + 16 + 4 + 6 + 4
    assert not any(m.metadata["reused"].value for _, m in first)
    assert all(m.tags.get("dagster/data_version") for _, m in first)

    assert main(args) == 0
    all_events = materializations(instance)
    assert len(all_events) == 2 * len(first)
    reused = [m.metadata["reused"].value for _, m in all_events]
    assert sum(reused) == len(first)  # every second-run materialization reused the store
    instance.dispose()


@pytest.mark.slow
def test_main_run_on_a_local_dask_cluster_stores_the_local_bits(tmp_path, monkeypatch, capsys, config_writer):
    """``manifpt run --workers 2``: the embedding and artifact assets run on 2 Dask worker processes, and every
    embedding and artifact store has the content hash the in-process steps give the same settings."""
    from manifpt_core.config import load_settings
    from manifpt_core.steps.pipeline import pipeline_steps
    from manifpt_core.store import Store

    for var in ("MANIFPT_HOME", "MANIFPT_PROFILE", "MANIFPT_CONFIG", "MANIFPT_DEVICE", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    config = config_writer(tmp_path)
    config.write_text('spaces = ["rgb"]\nseeds = [0]\n' + config.read_text()
                      + '[baselines]\nmethods = []\n[encoders.sl]\nsteps = 10\nbatch_size = 32\n')
    home = tmp_path / "home"
    args = ["run", "--profile", "tiny", "--config", str(config), "--home", str(home), "--device", "cpu",
            "--workers", "2"]
    assert main(args) == 0
    capsys.readouterr()
    settings = load_settings("tiny", config)
    remote, local = Store(home / "store", "bench"), Store(tmp_path / "local", "bench")
    for label, call in pipeline_steps(local, settings, ["alpha", "beta"]):
        if label.split()[0] in ("ingest", "generator", "space", "embed", "index", "artifacts"):
            call()
    for space in settings.spaces:
        for source in ("real", "alpha", "beta"):
            cluster_side = remote.source(source).artifacts(space).record
            assert "on dask" in cluster_side.summary.search_engine
            assert cluster_side.content_hash == local.source(source).artifacts(space).record.content_hash
            assert (remote.source(source).embeddings_record(space).content_hash
                    == local.source(source).embeddings_record(space).content_hash)
