"""The code location: every dataset's assets and jobs, the cross-dataset asset, the discovery sensor and the resource."""

import dagster as dg

from assets import artifacts, attribution, cross, embedding, index, ingestion
from pipelines.jobs import build_cross_dataset_job, build_jobs
from pipelines.partitions import DatasetSpec
from pipelines.resources import ManifptResource, resource_from_env
from pipelines.sensors import model_discovery_sensor

STEP_MODULES = [ingestion, embedding, index, artifacts, attribution]


def dataset_specs(resource: ManifptResource) -> list[DatasetSpec]:
    """One spec per dataset the resource's settings name."""
    return [DatasetSpec(s.dataset, s.spaces) for s in resource.datasets()]


def has_cross_dataset(specs: list[DatasetSpec]) -> bool:
    """Cross-dataset generalization needs two datasets at least."""
    return len(specs) >= 2


def build_definitions(resource: ManifptResource) -> dg.Definitions:
    """Definitions bound to one home and settings (the CLI and tests build their own)."""
    specs = dataset_specs(resource)
    assets = [a for ds in specs for module in STEP_MODULES for a in module.build(ds)]
    jobs = [job for ds in specs for job, _ in build_jobs(ds)]
    if has_cross_dataset(specs):
        assets += cross.build(specs)
        jobs.append(build_cross_dataset_job(cross.KEY))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        sensors=[model_discovery_sensor],
        resources={"manifpt": resource},
    )


defs = build_definitions(resource_from_env())
