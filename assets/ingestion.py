"""Step 1 assets: real images, generators (zoo entries or model folders) and their images."""

import dagster as dg

from assets._results import png_markdown, to_result
from assets.automation import ON_CHANGE
from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from assets.retries import step_asset
from manifpt_core.steps import ingest_generated, ingest_real, materialize_generator
from manifpt_core.steps.generators import GENERATOR_VERSION
from manifpt_core.steps.ingest import INGEST_VERSION
from manifpt_core.store import Outcome
from manifpt_core.store.records import ImagesSummary

GROUP = "ingestion"


def _images_result(context: dg.AssetExecutionContext, outcome: Outcome[ImagesSummary]) -> dg.MaterializeResult:
    """An image store's result: its metadata lists the files skipped (``skipped``) and counts them
    (``skipped_files``), and each is logged as a warning."""
    skipped = outcome.summary.skipped
    for entry in skipped:
        context.log.warning(f"skipped {entry['path']}: {entry['reason']}")
    return to_result(context, outcome, skipped_files=len(skipped))


def build(ds: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The ingestion assets of one dataset."""

    @step_asset(key=ds.key("real_images"), group_name=GROUP, code_version=INGEST_VERSION,
              deps=[ds.key("real_source")], automation_condition=ON_CHANGE, kinds={"zarr", "parquet"})
    def real_images(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """Real images split into the indexed reference set and the disjoint real class, with their manifest."""
        return _images_result(context, ingest_real(manifpt.store(ds.name), manifpt.settings(ds.name)))

    @step_asset(key=ds.key("generator"), group_name=GROUP, code_version=GENERATOR_VERSION, partitions_def=ds.models,
              deps=[real_images, ds.key("model_source")], automation_condition=ON_CHANGE, pool="gpu",
              kinds={"pytorch"})
    def generator(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """A generative model: a zoo entry trained on the real reference images, or a user's folder of samples."""
        outcome = materialize_generator(manifpt.store(ds.name), manifpt.settings(ds.name), context.partition_key)
        extra = {}
        if outcome.summary.grid:
            extra["samples"] = png_markdown(outcome.path / outcome.summary.grid, f"{context.partition_key} samples")
        return to_result(context, outcome, **extra)

    @step_asset(key=ds.key("generated_images"), group_name=GROUP, code_version=INGEST_VERSION,
              partitions_def=ds.models, deps=[generator, real_images], automation_condition=ON_CHANGE, pool="gpu",
              kinds={"zarr", "parquet"})
    def generated_images(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """A generative model's images in the image store, with their manifest, 7:2:1 splits and Fréchet distance."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return _images_result(context, ingest_generated(store, settings, context.partition_key))

    return [real_images, generator, generated_images]
