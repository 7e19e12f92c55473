"""Step 2 assets: every sample in every embedding space, as chunked Zarr arrays."""

import dagster as dg

from assets._results import to_result
from assets.automation import ON_CHANGE
from assets.partitions import DatasetSpec, by_model, by_space
from assets.resources import DaskResource, ManifptResource
from assets.retries import step_asset
from manifpt_core.names import REAL
from manifpt_core.steps import embed_source
from manifpt_core.steps.embed import EMBED_VERSION
from manifpt_core.steps.space import SPACE_VERSION, materialize_space

GROUP = "embedding"


def build(ds: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The embedding assets of one dataset."""

    @step_asset(key=ds.key("embedding_space"), group_name=GROUP, code_version=SPACE_VERSION,
                partitions_def=ds.space_partitions, deps=[ds.key("real_images")], automation_condition=ON_CHANGE, pool="gpu", kinds={"pytorch"})
    def embedding_space(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """What turns an image into a vector in one space: its card, and for sl/ssl the encoder
        (ResNet-50 from a local weights file, or trained on the real reference images)."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return to_result(context, materialize_space(store, settings, context.partition_key))

    @step_asset(key=ds.key("real_embeddings"), group_name=GROUP, code_version=EMBED_VERSION,
                partitions_def=ds.space_partitions, deps=[ds.key("real_images"), embedding_space], automation_condition=ON_CHANGE, pool="gpu",
                kinds={"zarr"})
    def real_embeddings(context: dg.AssetExecutionContext, manifpt: ManifptResource, dask: DaskResource) -> dg.MaterializeResult:
        """The real images (reference and real class) embedded in one space."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return to_result(context, embed_source(store, settings, context.partition_key, REAL,
                                                      cluster=dask.cluster(settings)))

    @step_asset(key=ds.key("generated_embeddings"), group_name=GROUP, code_version=EMBED_VERSION,
                partitions_def=ds.model_space,
                deps=[dg.AssetDep(ds.key("generated_images"), partition_mapping=by_model),
                      dg.AssetDep(embedding_space, partition_mapping=by_space)], automation_condition=ON_CHANGE, pool="gpu", kinds={"zarr"})
    def generated_embeddings(context: dg.AssetExecutionContext, manifpt: ManifptResource,
                             dask: DaskResource) -> dg.MaterializeResult:
        """One generative model's images embedded in one space."""
        keys = context.partition_key.keys_by_dimension
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return to_result(context, embed_source(store, settings, keys["space"], keys["model"],
                                                      cluster=dask.cluster(settings)))

    return [embedding_space, real_embeddings, generated_embeddings]
