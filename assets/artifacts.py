"""Step 4 assets: nearest reference id, distance and artifact of every query sample."""

import dagster as dg

from assets._results import to_result
from assets.automation import ON_CHANGE
from assets.partitions import DatasetSpec, by_space
from assets.resources import DaskResource, ManifptResource
from assets.retries import step_asset
from manifpt_core.names import REAL
from manifpt_core.steps import materialize_artifacts
from manifpt_core.steps.artifacts import ARTIFACT_VERSION

GROUP = "artifacts"


def build(ds: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The artifact assets of one dataset."""

    @step_asset(key=ds.key("real_artifacts"), group_name=GROUP, code_version=ARTIFACT_VERSION,
                partitions_def=ds.space_partitions, deps=[ds.key("real_embeddings"), ds.key("reference_index")],
                pool="gpu", automation_condition=ON_CHANGE, kinds={"zarr"})
    def real_artifacts(context: dg.AssetExecutionContext, manifpt: ManifptResource, dask: DaskResource) -> dg.MaterializeResult:
        """Artifacts of the real class samples (x - nearest reference), the attributor's 'real' class."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return to_result(context, materialize_artifacts(store, settings, context.partition_key, REAL,
                                                               cluster=dask.cluster(settings)))

    @step_asset(key=ds.key("generated_artifacts"), group_name=GROUP, code_version=ARTIFACT_VERSION,
                partitions_def=ds.model_space,
                deps=[ds.key("generated_embeddings"), dg.AssetDep(ds.key("reference_index"), partition_mapping=by_space)],
                pool="gpu", automation_condition=ON_CHANGE, kinds={"zarr"})
    def generated_artifacts(context: dg.AssetExecutionContext, manifpt: ManifptResource,
                            dask: DaskResource) -> dg.MaterializeResult:
        """Artifacts of one generative model's samples in one space: its fingerprint."""
        keys = context.partition_key.keys_by_dimension
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return to_result(context, materialize_artifacts(store, settings, keys["space"], keys["model"],
                                                               cluster=dask.cluster(settings)))

    return [real_artifacts, generated_artifacts]
