"""The Dagster code location loads and has the five-step shape, once per dataset."""

import dagster as dg
import pytest

from assets.resources import ManifptResource
from pipelines.definitions import build_definitions, defs

SOURCES = {"real_source", "model_source", "model_set"}
ASSETS = SOURCES | {"real_images", "generator", "generated_images", "embedding_space", "real_embeddings", "generated_embeddings",
          "reference_index", "real_artifacts", "generated_artifacts", "attributor", "raw_control",
          "baseline", "robustness", "attribution_report", "feature_table"}
QUERIES = {"queries/query_set", "queries/query_attribution"}
DATASETS = ("fmnist_clothing", "fmnist_footwear_bags")
CROSS = "cross_dataset/generalization"


def test_the_shipped_code_location_loads():
    assert defs.resolve_asset_graph().get_all_asset_keys()
    # The repository as the webserver builds it: every op and job name unique (a job named like an asset's op fails
    # here, not in the asset graph)
    assert defs.get_repository_def().get_all_jobs()


def test_two_datasets_with_five_groups_and_the_query_sets(demo_defs, step_groups):
    graph = demo_defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert {graph.get(k).group_name for k in keys} == step_groups | {"queries"}
    assert {k.to_user_string() for k in keys} == {f"{d}/{a}" for d in DATASETS for a in ASSETS} | {CROSS} | QUERIES
    assert {k.to_user_string() for k in keys if graph.get(k).group_name == "queries"} == QUERIES


def test_query_attribution_reads_every_dataset_and_requests_nothing_upstream(demo_defs):
    graph = demo_defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey.from_user_string("queries/query_attribution"))
    assert node.parent_keys == {dg.AssetKey.from_user_string("queries/query_set")} | {
        dg.AssetKey([d, a]) for d in DATASETS for a in ("attributor", "raw_control")}
    assert not node.child_keys
    assert node.partitions_def.name == "query_sets"
    assert "query_set_sensor" in {s.name for s in demo_defs.sensors}


def test_cross_dataset_runs_after_every_dataset_report(demo_defs):
    node = demo_defs.resolve_asset_graph().get(dg.AssetKey.from_user_string(CROSS))
    assert node.group_name == "attribution" and node.pools == {"gpu"}
    assert node.parent_keys == {dg.AssetKey([d, "attribution_report"]) for d in DATASETS}
    assert demo_defs.resolve_job_def("cross_dataset").name == "cross_dataset"


def test_no_baselines_means_no_baseline_asset_or_job(tmp_path):
    config = tmp_path / "none.toml"
    config.write_text('dataset = "only"\n[baselines]\nmethods = []\n')
    built = build_definitions(ManifptResource(profile="demo", config_file=str(config)))
    assert "baseline" not in {k.path[-1] for k in built.resolve_asset_graph().get_all_asset_keys()}
    with pytest.raises(dg.DagsterInvariantViolationError):
        built.resolve_job_def("only__baselines")


def test_one_dataset_has_no_cross_dataset_asset(tmp_path):
    config = tmp_path / "one.toml"
    config.write_text('dataset = "only"\n')
    graph = build_definitions(ManifptResource(profile="demo", config_file=str(config))).resolve_asset_graph()
    assert {k.path[0] for k in graph.get_all_asset_keys()} == {"only", "queries"}


def test_jobs_and_sensor_resolve(demo_defs):
    for dataset in DATASETS:
        for job in ("real_ingestion", "model_ingestion", "reference", "model_space", "attribution", "baselines",
                    "control", "report", "features", "observe_real", "observe_models"):
            assert demo_defs.resolve_job_def(f"{dataset}__{job}").name == f"{dataset}__{job}"
    assert demo_defs.resolve_sensor_def("model_discovery_sensor")
    assert demo_defs.resolve_sensor_def("query_set_sensor")


def test_automation_is_on_by_default_and_never_eager(demo_defs):
    sensors = {s.name: s for s in demo_defs.sensors}
    assert {"model_discovery_sensor", "automation", "automation_gpu"} <= set(sensors)
    for name in ("model_discovery_sensor", "automation", "automation_gpu"):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in demo_defs.schedules)
    assert {s.name for s in demo_defs.schedules} == {f"{d}__{name}" for d in DATASETS for name in
                                                     ("model_discovery_schedule", "full_retrain_attributors",
                                                      "full_retrain_control", "full_retrain_baselines",
                                                      "full_retrain_twins")}
    graph = demo_defs.resolve_asset_graph()
    labels = {}
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        if key.to_user_string() == "queries/query_set":  # observed by the query set sensor, not by a run
            assert condition is None
            continue
        assert condition is not None, key
        labels[key.path[-1]] = condition.get_label()
    gather = {"robustness", "attribution_report", "generalization", "feature_table"}
    assert {labels[k] for k in gather} == {"on_change_after_upstream"}
    assert {labels[s] for s in SOURCES} == {"observe (0 * * * *)"}
    assert {v for k, v in labels.items() if k not in SOURCES | gather} == {"on_change"}
    gpu_targets = sensors["automation_gpu"].asset_selection.resolve(graph)
    assert {k.path[-1] for k in gpu_targets} == {
        "generator", "generated_images", "embedding_space", "real_embeddings", "generated_embeddings",
        "real_artifacts", "generated_artifacts", "attributor", "raw_control", "baseline", "generalization",
        "robustness", "attribution_report", "feature_table", "query_attribution"}
    assert not gpu_targets & sensors["automation"].asset_selection.resolve(graph)  # nothing requested twice


def test_gpu_jobs_are_tagged_for_the_queue_limit(demo_defs):
    from pathlib import Path

    import yaml

    tagged = {j.name.split("__")[-1] for j in demo_defs.jobs if j.tags.get("manifpt/gpu") == "true"}
    assert tagged == {"model_ingestion", "reference", "model_space", "attribution", "baselines", "control", "robustness_eval",
                      "features", "cross_dataset"}
    instance = yaml.safe_load((Path(__file__).parents[2] / "dagster.yaml").read_text())
    limits = instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "manifpt/gpu", "value": "true", "limit": 1} in limits
    assert instance["concurrency"]["pools"]["default_limit"] == 1
