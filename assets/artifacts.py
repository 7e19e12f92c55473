"""Step 4 assets: nearest reference id, distance and artifact of every query sample."""

import dagster as dg

from assets._results import to_result
from assets.embedding import generated_embeddings, real_embeddings
from assets.index import reference_index
from manifpt_core.steps import materialize_artifacts
from manifpt_core.steps.artifacts import ARTIFACT_VERSION
from pipelines.partitions import by_space, embedding_spaces, model_space
from pipelines.resources import ManifptResource

GROUP = "artifacts"


@dg.asset(group_name=GROUP, code_version=ARTIFACT_VERSION, partitions_def=embedding_spaces,
          deps=[real_embeddings, reference_index], kinds={"zarr"})
def real_artifacts(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
    """Artifacts of the real class samples (x - nearest reference), the attributor's 'real' class."""
    return to_result(context, materialize_artifacts(manifpt.store(), manifpt.settings(), context.partition_key, "real"))


@dg.asset(
    group_name=GROUP,
    code_version=ARTIFACT_VERSION,
    partitions_def=model_space,
    deps=[generated_embeddings, dg.AssetDep(reference_index, partition_mapping=by_space)],
    kinds={"zarr"},
)
def generated_artifacts(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
    """Artifacts of one generative model's samples in one space: its fingerprint."""
    keys = context.partition_key.keys_by_dimension
    return to_result(context, materialize_artifacts(manifpt.store(), manifpt.settings(), keys["space"], keys["model"]))
