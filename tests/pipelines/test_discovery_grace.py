"""Discovery that one bad folder does not stop, and removed models whose data is deleted only after a grace
period, never while a run in progress targets them."""

import json
import os
import shutil

import dagster as dg
import pytest

from assets.resources import ManifptResource
from manifpt_core import steps
from pipelines.cli import main
from pipelines.definitions import build_definitions
from pipelines.discovery import check_datasets, discover, load_pending_removals, pending_removals_path

PARTITIONS = "models_bench"


@pytest.fixture
def code_location(tmp_path, config_writer, monkeypatch):
    """``code_location(**settings)``: the resource and definitions over a benchmark in ``tmp_path``, with
    ``settings`` as top-level config lines (strings quoted). DAGSTER_HOME is unset: a command run in process by
    another test may have pointed it at a home that is gone."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    def setup(**settings):
        config = config_writer(tmp_path)
        lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        config.write_text(lines + config.read_text())
        resource = ManifptResource(home=str(tmp_path / "home"), profile="tiny", config_file=str(config), device="cpu")
        return resource, build_definitions(resource)

    return setup


def tick(defs, instance, resource):
    """One sensor evaluation, applied as the daemon applies it (partitions added and deleted)."""
    context = dg.build_sensor_context(instance=instance, resources={"manifpt": resource})
    result = defs.resolve_sensor_def("model_discovery_sensor")(context)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def fake_model_data(store, settings, model):
    """Stand-ins for everything the store holds of ``model``; returns the paths."""
    paths = store.paths.model_paths(model, settings.spaces)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            path.write_bytes(b"manifest")
        else:
            path.mkdir()
            (path / "zarr.json").write_text("{}")
    return paths


def test_a_bad_folder_and_an_escaping_link_are_reported_in_the_tick_and_by_ls(tmp_path, code_location, capsys):
    resource, defs = code_location()
    bench = tmp_path / "bench"
    (bench / "Bad Name").mkdir()
    os.symlink("/", bench / "rootlink")
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(defs, instance, resource)
        (request,) = first.dynamic_partitions_requests
        assert sorted(request.partition_keys) == ["alpha", "beta"]  # the others are discovered
        assert defs.resolve_job_def("bench__observe_real").execute_in_process(instance=instance).success
        reason = tick(defs, instance, resource).skip_reason.skip_message
    assert "2 model folders skipped" in reason
    assert f"{bench / 'Bad Name'}" in reason and "'bad_name'" in reason
    assert f"{bench / 'rootlink'}" in reason and "follow_symlinks = true" in reason

    config = tmp_path / "bench.toml"
    assert main(["ls", "--home", str(tmp_path / "home"), "--profile", "tiny", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "skipped model folders:" in out and "Bad Name" in out and "rootlink" in out and "follow_symlinks" in out
    assert main(["ls", "--json", "--home", str(tmp_path / "home"), "--profile", "tiny", "--config", str(config)]) == 0
    listed = json.loads(capsys.readouterr().out)["skipped_model_folders"]
    assert sorted(os.path.basename(e["path"]) for e in listed) == ["Bad Name", "rootlink"]


def test_data_is_deleted_after_the_grace_checks_not_before(code_location):
    resource, defs = code_location(removed_models="delete", removal_grace_checks=2, removal_grace_minutes=0)
    store, settings = resource.store("bench"), resource.settings("bench")
    paths = fake_model_data(store, settings, "gamma")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(PARTITIONS, ["alpha", "beta", "gamma"])  # gamma's folder is gone
        first = tick(defs, instance, resource)
        assert list(first.dynamic_partitions_requests[0].partition_keys) == ["gamma"]  # the partition goes now
        assert instance.get_dynamic_partitions(PARTITIONS) == ["alpha", "beta"]
        assert all(os.path.lexists(p) for p in paths)  # first missing check: kept
        assert load_pending_removals(store)["gamma"]["checks"] == 1
        tick(defs, instance, resource)
        assert not any(os.path.lexists(p) for p in paths)  # second: deleted
        assert load_pending_removals(store) == {}


def test_data_is_deleted_only_after_the_grace_minutes(code_location):
    resource, _ = code_location(removed_models="delete", removal_grace_checks=1, removal_grace_minutes=10)
    store, settings = resource.store("bench"), resource.settings("bench")
    paths = fake_model_data(store, settings, "gamma")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(PARTITIONS, ["alpha", "beta", "gamma"])
        (change,) = discover(instance, resource, now=1_000_000.0)
        assert change.removed == ["gamma"] and change.pending == ["gamma"] and change.deleted == []
        instance.delete_dynamic_partition(PARTITIONS, "gamma")
        (later,) = check_datasets(instance, resource, now=1_000_000.0 + 9 * 60)
        assert later.pending == ["gamma"] and all(os.path.lexists(p) for p in paths)
        (change,) = discover(instance, resource, now=1_000_000.0 + 10 * 60)
        assert change.deleted == ["gamma"] and change.pending == [] and not any(os.path.lexists(p) for p in paths)


def test_data_is_not_deleted_while_a_run_in_progress_targets_the_model(code_location):
    resource, defs = code_location(removed_models="delete", removal_grace_checks=1, removal_grace_minutes=0)
    store, settings = resource.store("bench"), resource.settings("bench")
    paths = fake_model_data(store, settings, "gamma")
    with dg.DagsterInstance.ephemeral() as instance:
        job = defs.resolve_job_def("bench__observe_models")
        instance.add_dynamic_partitions(PARTITIONS, ["alpha", "beta", "gamma"])
        run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": "gamma"})
        instance.create_run_for_job(job, status=dg.DagsterRunStatus.SUCCESS, tags={"dagster/partition": "gamma"})
        tick(defs, instance, resource)
        tick(defs, instance, resource)
        assert all(os.path.lexists(p) for p in paths)
        assert load_pending_removals(store)["gamma"]["checks"] == 2
        instance.report_run_canceled(run)
        tick(defs, instance, resource)
        assert not any(os.path.lexists(p) for p in paths)


def test_a_folder_renamed_away_and_back_keeps_its_data_and_reuses_it(tmp_path, code_location):
    resource, defs = code_location(removed_models="delete", removal_grace_checks=2, removal_grace_minutes=0)
    store, settings = resource.store("bench"), resource.settings("bench")
    steps.ingest_real(store, settings)
    steps.materialize_generator(store, settings, "alpha")
    first = steps.ingest_generated(store, settings, "alpha")
    stored = [p for p in store.paths.model_paths("alpha", settings.spaces) if os.path.lexists(p)]
    assert len(stored) == 3  # generator, images, manifest
    before = {p: os.lstat(p) for p in stored}
    with dg.DagsterInstance.ephemeral() as instance:
        tick(defs, instance, resource)
        assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["alpha", "beta"]
        shutil.move(tmp_path / "bench" / "alpha", tmp_path / "away")
        tick(defs, instance, resource)
        assert instance.get_dynamic_partitions(PARTITIONS) == ["beta"]
        shutil.move(tmp_path / "away", tmp_path / "bench" / "alpha")
        back = tick(defs, instance, resource)
        assert [(r.job_name, r.partition_key) for r in back.run_requests][-1] == ("bench__observe_models", "alpha")
        assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["alpha", "beta"]
        tick(defs, instance, resource)
        tick(defs, instance, resource)
    assert load_pending_removals(store) == {} and pending_removals_path(store).parent == store.paths.base
    after = {p: os.lstat(p) for p in stored}
    assert all((after[p].st_ino, after[p].st_mtime_ns) == (before[p].st_ino, before[p].st_mtime_ns) for p in stored)
    assert steps.materialize_generator(store, settings, "alpha").reused
    again = steps.ingest_generated(store, settings, "alpha")
    assert again.reused and again.content_hash == first.content_hash


def test_skipped_images_show_in_the_asset_metadata(tmp_path, code_location):
    resource, defs = code_location(on_bad_image="skip")
    (tmp_path / "bench" / "real" / "small" / "text.png").write_text("not an image")
    key = dg.AssetKey(["bench", "real_images"])
    asset = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and key in a.keys)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([asset], instance=instance, resources={"manifpt": resource})
        (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["skipped_files"].value == 1
    (entry,) = metadata["skipped"].value
    assert entry["path"] == "real/small/text.png" and "cannot read image" in entry["reason"]
