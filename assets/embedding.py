"""Step 2 assets: every sample in every embedding space, as chunked Zarr arrays."""

import dagster as dg

from assets._results import to_result
from assets.ingestion import generated_images, real_images
from manifpt_core.steps import embed_source
from manifpt_core.steps.embed import EMBED_VERSION
from pipelines.partitions import by_model, embedding_spaces, model_space
from pipelines.resources import ManifptResource

GROUP = "embedding"


@dg.asset(group_name=GROUP, code_version=EMBED_VERSION, partitions_def=embedding_spaces, deps=[real_images],
          kinds={"zarr"})
def real_embeddings(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
    """The real images (reference and real class) embedded in one space."""
    return to_result(context, embed_source(manifpt.store(), manifpt.settings(), context.partition_key, "real"))


@dg.asset(
    group_name=GROUP,
    code_version=EMBED_VERSION,
    partitions_def=model_space,
    deps=[dg.AssetDep(generated_images, partition_mapping=by_model)],
    kinds={"zarr"},
)
def generated_embeddings(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
    """One generative model's images embedded in one space."""
    keys = context.partition_key.keys_by_dimension
    return to_result(context, embed_source(manifpt.store(), manifpt.settings(), keys["space"], keys["model"]))
