"""Step 3 asset: the FAISS index of the real reference embeddings of each space."""

import dagster as dg

from assets._results import to_result
from assets.embedding import real_embeddings
from manifpt_core.steps import build_index
from manifpt_core.steps.index import INDEX_VERSION
from pipelines.partitions import embedding_spaces
from pipelines.resources import ManifptResource


@dg.asset(group_name="index", code_version=INDEX_VERSION, partitions_def=embedding_spaces, deps=[real_embeddings],
          kinds={"faiss"})
def reference_index(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
    """An exact nearest-neighbour index over the real reference embeddings (the manifold estimate)."""
    return to_result(context, build_index(manifpt.store(), manifpt.settings(), context.partition_key))
