"""The assets' own declarations in the demo code location: code versions and descriptions, partitioning per
model and space, and the GPU pool."""

import dagster as dg

# The observable source assets (assets/sources.py, assets/queries.py): observed, so they have no code version.
SOURCES = {"real_source", "model_source", "model_set", "query_set"}


def test_every_asset_has_code_version_and_description(demo_defs):
    for spec in demo_defs.resolve_all_asset_specs():
        assert spec.code_version or spec.key.path[-1] in SOURCES, spec.key
        assert spec.description and len(spec.description) > 20, spec.key


def test_partitioning_per_model_and_space(demo_defs):
    graph = demo_defs.resolve_asset_graph()

    def pdef(name):
        return graph.get(dg.AssetKey(["fmnist_clothing", name])).partitions_def

    assert isinstance(pdef("generator"), dg.DynamicPartitionsDefinition)
    assert pdef("generator").name == "models_fmnist_clothing"
    assert isinstance(pdef("generated_artifacts"), dg.MultiPartitionsDefinition)
    assert pdef("reference_index").get_partition_keys() == ["rgb", "freq", "sl", "ssl"]
    assert pdef("real_images") is None and pdef("attribution_report") is None
    assert pdef("baseline").get_partition_keys() == ["mccloskey", "nataraj", "durall-lr", "durall-svm", "dzanic",
                                                     "raw-blurjpeg"]
    other = graph.get(dg.AssetKey(["fmnist_footwear_bags", "generator"])).partitions_def
    assert other.name == "models_fmnist_footwear_bags"


def test_gpu_steps_are_in_the_gpu_pool(demo_defs):
    graph = demo_defs.resolve_asset_graph()
    gpu = {k.path[-1] for k in graph.get_all_asset_keys() if graph.get(k).pools == {"gpu"}}
    assert gpu == {"generator", "generated_images", "embedding_space", "real_embeddings", "generated_embeddings",
                   "real_artifacts", "generated_artifacts", "attributor", "raw_control", "baseline", "robustness", "generalization",
                   "feature_table", "query_attribution"}
