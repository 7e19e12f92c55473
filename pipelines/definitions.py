"""The code location: every dataset's assets and jobs, the discovery sensor and the resource."""

import dagster as dg

from assets import artifacts, attribution, embedding, index, ingestion
from pipelines.jobs import build_jobs
from pipelines.partitions import DatasetSpec
from pipelines.resources import ManifptResource, resource_from_env
from pipelines.sensors import model_discovery_sensor

STEP_MODULES = [ingestion, embedding, index, artifacts, attribution]


def dataset_specs(resource: ManifptResource) -> list[DatasetSpec]:
    """One spec per dataset the resource's settings name."""
    return [DatasetSpec(s.dataset, s.spaces) for s in resource.datasets()]


def build_definitions(resource: ManifptResource) -> dg.Definitions:
    """Definitions bound to one home and settings (the CLI and tests build their own)."""
    specs = dataset_specs(resource)
    return dg.Definitions(
        assets=[a for ds in specs for module in STEP_MODULES for a in module.build(ds)],
        jobs=[job for ds in specs for job, _ in build_jobs(ds)],
        sensors=[model_discovery_sensor],
        resources={"manifpt": resource},
    )


defs = build_definitions(resource_from_env())
