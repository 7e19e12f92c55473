"""The observed sources: the real images, each generative model, and the set of models, versioned by content.

They are what the pipeline reads from outside the store. Observing them records a
data version (a content hash of the idx files or image folder, or of a zoo card);
when it changes, the automation refreshes what depends on it. Files whose size and
times are unchanged are not read again (the store's file hash cache); each
observation's metadata says how many files were read and how many came from the cache.
"""

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from assets.automation import OBSERVE
from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from manifpt_core.steps.generators import (
    configured_models,
    model_set_version,
    observe_model_source,
)
from manifpt_core.steps.ingest import observe_real_source
from manifpt_core.store.file_hashes import FileHashCache

GROUP = "ingestion"
REAL_SOURCE = "The real images as configured (Fashion-MNIST idx files, or the folder real/), by content hash."
MODEL_SOURCE = "Each generative model's definition: its zoo card, or the content hash of its image folder."
MODEL_SET = ("Which generative models the dataset has (its model partitions). When one is added or removed the "
             "attributors, the control and the baselines are retrained; model discovery records it as it changes.")


def build(ds: DatasetSpec) -> list[dg.SourceAsset]:
    """The observable sources of one dataset."""

    @dg.observable_source_asset(key=ds.key("real_source"), group_name=GROUP, automation_condition=OBSERVE,
                                description=REAL_SOURCE)
    def real_source(manifpt: ManifptResource) -> dg.ObserveResult:
        cache = FileHashCache.in_store(manifpt.home_folder.store_root)
        observed = observe_real_source(manifpt.settings(ds.name), cache)
        return dg.ObserveResult(data_version=dg.DataVersion(observed.content_hash), metadata=observed.metadata())

    @dg.observable_source_asset(key=ds.key("model_source"), group_name=GROUP, partitions_def=ds.models,
                                automation_condition=OBSERVE, description=MODEL_SOURCE)
    def model_source(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.DataVersionsByPartition:
        settings = manifpt.settings(ds.name)
        registered = context.instance.get_dynamic_partitions(ds.models.name)
        wanted = [context.partition_key] if context.has_partition_key else registered
        present = set(configured_models(settings))
        gone = sorted(set(wanted) - present)
        if gone:  # the discovery sensor deletes their partitions; they have nothing left to observe
            context.log.warning(f"not observed, no longer configured: {gone}")
        cache = FileHashCache.in_store(manifpt.home_folder.store_root)
        # A partitioned source may return only versions; its observations are logged here so that they carry
        # the files read, with the data version tag the returned versions would have had.
        for model in (m for m in wanted if m in present):
            observed = observe_model_source(settings, model, cache)
            context.log_event(dg.AssetObservation(ds.key("model_source"), partition=model,
                                                  tags={DATA_VERSION_TAG: observed.content_hash},
                                                  metadata=observed.metadata()))
        return dg.DataVersionsByPartition({})

    @dg.observable_source_asset(key=ds.key("model_set"), group_name=GROUP, automation_condition=OBSERVE,
                                description=MODEL_SET)
    def model_set(context: dg.AssetExecutionContext) -> dg.DataVersion:
        return dg.DataVersion(model_set_version(context.instance.get_dynamic_partitions(ds.models.name)))

    return [real_source, model_source, model_set]
