"""Step 3 asset: the FAISS index of the real reference embeddings of each space."""

import dagster as dg

from assets._results import to_result
from assets.automation import ON_CHANGE
from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from assets.retries import step_asset
from manifpt_core.steps import build_index
from manifpt_core.steps.index import INDEX_VERSION


def build(ds: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The index asset of one dataset."""

    @step_asset(key=ds.key("reference_index"), group_name="index", code_version=INDEX_VERSION,
                partitions_def=ds.space_partitions, deps=[ds.key("real_embeddings")],
                automation_condition=ON_CHANGE, kinds={"faiss"})
    def reference_index(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """An exact nearest-neighbour index over the real reference embeddings (the manifold estimate)."""
        return to_result(context, build_index(manifpt.store(ds.name), manifpt.settings(ds.name), context.partition_key))

    return [reference_index]
