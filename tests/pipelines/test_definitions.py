"""The Dagster code location loads and has the five-step shape."""

import dagster as dg

from pipelines.definitions import defs

STEP_GROUPS = {"ingestion", "embedding", "index", "artifacts", "attribution"}


def test_definitions_load_with_five_groups():
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    groups = {graph.get(k).group_name for k in keys}
    assert groups == STEP_GROUPS
    assert {k.to_user_string() for k in keys} == {
        "real_images", "generator", "generated_images", "real_embeddings", "generated_embeddings",
        "reference_index", "real_artifacts", "generated_artifacts", "attributor", "raw_control", "attribution_report",
    }


def test_every_asset_has_code_version_and_description():
    for spec in defs.resolve_all_asset_specs():
        assert spec.code_version, spec.key
        assert spec.description and len(spec.description) > 20, spec.key


def test_partitioning_per_model_and_space():
    graph = defs.resolve_asset_graph()
    def pdef(name):
        return graph.get(dg.AssetKey(name)).partitions_def

    assert isinstance(pdef("generator"), dg.DynamicPartitionsDefinition)
    assert isinstance(pdef("generated_artifacts"), dg.MultiPartitionsDefinition)
    assert pdef("reference_index").get_partition_keys() == ["rgb", "freq"]
    assert pdef("real_images") is None and pdef("attribution_report") is None


def test_gpu_steps_are_in_the_gpu_pool():
    graph = defs.resolve_asset_graph()
    gpu = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).pools == {"gpu"}}
    assert gpu == {"generator", "generated_images", "attributor", "raw_control"}


def test_jobs_and_sensor_resolve():
    for name in ("real_ingestion", "model_ingestion", "reference", "model_space", "attribution", "report"):
        assert defs.resolve_job_def(name).name == name
    assert defs.resolve_sensor_def("model_discovery_sensor")
