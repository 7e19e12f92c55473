"""Model discovery: the sensor and the schedule add new models, observe them, and handle removed ones."""

import shutil

import dagster as dg
import numpy as np
import pytest

from assets.resources import ManifptResource
from manifpt_core.steps.generators import model_set_version
from pipelines.definitions import build_definitions
from pipelines.discovery import discover

PARTITIONS = "models_bench"
MODEL_SET = dg.AssetKey(["bench", "model_set"])


@pytest.fixture
def code_location(tmp_path, config_writer):
    """``code_location(removed_models="keep", extra="")``: the resource and definitions over a benchmark in
    ``tmp_path`` (``extra``: more top-level config lines)."""

    def setup(removed_models="keep", extra=""):
        config = config_writer(tmp_path)
        config.write_text(f'removed_models = "{removed_models}"\n{extra}' + config.read_text())
        resource = ManifptResource(home=str(tmp_path / "home"), profile="tiny", config_file=str(config), device="cpu")
        return resource, build_definitions(resource)

    return setup


def evaluate_sensor(defs, instance, resource):
    context = dg.build_sensor_context(instance=instance, resources={"manifpt": resource})
    return defs.resolve_sensor_def("model_discovery_sensor")(context)


def test_sensor_adds_new_models_and_requests_their_observation(code_location):
    resource, defs = code_location()
    with dg.instance_for_test() as instance:
        result = evaluate_sensor(defs, instance, resource)
        (request,) = result.dynamic_partitions_requests
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        assert request.partitions_def_name == PARTITIONS and sorted(request.partition_keys) == ["alpha", "beta"]
        runs = [(r.job_name, r.partition_key) for r in result.run_requests]
        assert runs == [("bench__observe_real", None), ("bench__observe_models", "alpha"),
                        ("bench__observe_models", "beta")]
        (observation,) = result.asset_events
        assert observation.asset_key == MODEL_SET
        assert observation.tags["dagster/data_version"] == model_set_version(["alpha", "beta"])

        # applied as the daemon applies it, the next tick has nothing to do
        instance.add_dynamic_partitions(PARTITIONS, list(request.partition_keys))
        for run in result.run_requests:
            assert defs.resolve_job_def(run.job_name).execute_in_process(
                instance=instance, partition_key=run.partition_key).success
        versions = instance.get_latest_data_version_record(dg.AssetKey(["bench", "model_source"]), partition_key="beta")
        assert versions is not None
        assert evaluate_sensor(defs, instance, resource).skip_reason


@pytest.mark.parametrize("policy", ["keep", "delete"])
def test_a_removed_model_loses_its_partition_and_its_data_by_setting(code_location, policy):
    # No grace period: the data goes in the check that finds the folder gone (grace: test_discovery_grace).
    resource, defs = code_location(policy, "removal_grace_checks = 1\nremoval_grace_minutes = 0\n")
    store = resource.store("bench")
    settings = resource.settings("bench")
    paths = store.paths.model_paths("gamma", settings.spaces)
    for path in paths[:2] + paths[3:]:
        (path / "zarr.json").parent.mkdir(parents=True)
        (path / "zarr.json").write_text("{}")
    paths[2].parent.mkdir(parents=True, exist_ok=True)
    paths[2].write_bytes(b"manifest")
    kept = store.paths.model_paths("alpha", settings.spaces)[0]
    kept.mkdir(parents=True)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS, ["alpha", "beta", "gamma"])  # gamma's folder is gone
        result = evaluate_sensor(defs, instance, resource)
        (request,) = result.dynamic_partitions_requests
        assert isinstance(request, dg.DeleteDynamicPartitionsRequest) and list(request.partition_keys) == ["gamma"]
        (observation,) = result.asset_events
        assert observation.tags["dagster/data_version"] == model_set_version(["alpha", "beta"])
        assert not any(r.job_name.endswith("observe_models") for r in result.run_requests)
    assert all(p.exists() == (policy == "keep") for p in paths)
    assert kept.is_dir()  # other models are never touched


def test_a_removed_model_retrains_the_attributors_through_the_model_set(code_location):
    resource, defs = code_location()
    graph = defs.resolve_asset_graph()
    dependents = {k.path[-1] for k in graph.get(MODEL_SET).child_keys}
    assert dependents == {"attributor", "raw_control", "baseline", "feature_table"}


def test_the_schedule_applies_the_same_check_itself(tmp_path, code_location):
    resource, defs = code_location()
    schedule = defs.resolve_schedule_def("bench__model_discovery_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, resources={"manifpt": resource},
                                            repository_def=defs.get_repository_def())
        requests = schedule.evaluate_tick(context).run_requests
        assert sorted(r.partition_key for r in requests) == ["alpha", "beta"]
        assert {r.job_name for r in requests} <= {"bench__observe_models", None}
        assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["alpha", "beta"]
        assert instance.get_latest_data_version_record(MODEL_SET) is not None

        shutil.rmtree(tmp_path / "bench" / "beta")
        context = dg.build_schedule_context(instance=instance, resources={"manifpt": resource},
                                            repository_def=defs.get_repository_def())
        schedule.evaluate_tick(context)
        assert instance.get_dynamic_partitions(PARTITIONS) == ["alpha"]


def test_a_folder_under_models_path_is_discovered_and_its_removal_too(tmp_path, png_writer):
    models = tmp_path / "my_models"
    models.mkdir()
    config = tmp_path / "mine.toml"
    config.write_text(f'dataset = "mine"\nzoo = []\nmodels_path = "{models}"\n')  # beside Fashion-MNIST
    resource = ManifptResource(home=str(tmp_path / "home"), profile="tiny", config_file=str(config), device="cpu")
    partitions = "models_mine"
    with dg.instance_for_test() as instance:
        (first,) = discover(instance, resource)
        assert first.dataset == "mine" and first.added == [] and first.removed == []
        assert [r.job_name for r in first.run_requests] == ["mine__observe_real"]  # an empty folder: no model yet

        png_writer(models / "mygan", np.zeros((3, 1, 28, 28), np.uint8))
        (change,) = discover(instance, resource)
        assert change.added == ["mygan"] and change.removed == []
        assert [(r.job_name, r.partition_key) for r in change.run_requests][-1] == ("mine__observe_models", "mygan")
        (observation,) = change.observations
        assert observation.tags["dagster/data_version"] == model_set_version(["mygan"])
        instance.add_dynamic_partitions(partitions, change.added)  # as the sensor's result is applied
        assert instance.get_dynamic_partitions(partitions) == ["mygan"]

        shutil.rmtree(models / "mygan")
        (change,) = discover(instance, resource)
        assert change.added == [] and change.removed == ["mygan"]
        assert change.observations[0].tags["dagster/data_version"] == model_set_version([])
        for model in change.removed:
            instance.delete_dynamic_partition(partitions, model)
        assert instance.get_dynamic_partitions(partitions) == []
