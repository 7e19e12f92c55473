"""The code location: every dataset's sources, assets, asset checks and jobs, the cross-dataset asset, model discovery
(sensor and schedule), the automation sensors and the resource.

``pipelines`` imports ``assets``, never the reverse: the assets, their partitions, automation conditions and
resource are self-contained; this package wires them into definitions, jobs, sensors and the command line.
"""

import os

import dagster as dg

from assets import artifacts, attribution, checks, cross, embedding, index, ingestion, queries, sources
from assets.partitions import DatasetSpec
from assets.resources import DEFAULT_HOME, DaskResource, ManifptResource
from pipelines.automation import automation_sensors
from pipelines.discovery import build_discovery
from pipelines.jobs import build_cross_dataset_job, build_jobs, build_observation_jobs
from pipelines.queries import build_query_sensor
from pipelines.retrain import build_retrain_schedules

# What `manifpt ui` hands to the code location it starts (a separate process): read once, when it loads.
ENV_HOME, ENV_PROFILE, ENV_CONFIG, ENV_DEVICE = "MANIFPT_HOME", "MANIFPT_PROFILE", "MANIFPT_CONFIG", "MANIFPT_DEVICE"
ENV_DASK_ADDRESS, ENV_DASK_WORKERS = "MANIFPT_DASK_ADDRESS", "MANIFPT_DASK_WORKERS"

STEP_MODULES = [sources, ingestion, embedding, index, artifacts, attribution]


def dataset_specs(resource: ManifptResource) -> list[DatasetSpec]:
    """One spec per dataset the resource's settings name."""
    return [DatasetSpec.of(s) for s in resource.datasets()]


def has_cross_dataset(specs: list[DatasetSpec]) -> bool:
    """Cross-dataset generalization needs two datasets at least."""
    return len(specs) >= 2


def build_definitions(resource: ManifptResource, dask: DaskResource | None = None) -> dg.Definitions:
    """Definitions bound to one home and settings (the CLI and tests build their own); ``dask``: where the heavy
    blockwise work runs (default: the settings' ``cluster.*``)."""
    specs = dataset_specs(resource)
    assets = [a for ds in specs for module in STEP_MODULES for a in module.build(ds)]
    jobs = [job for ds in specs for job, _ in build_jobs(ds) + build_observation_jobs(ds)]
    if has_cross_dataset(specs):
        assets += cross.build(specs)
        jobs.append(build_cross_dataset_job(cross.KEY))
    assets += queries.build(specs)
    asset_checks = [check for ds in specs for check in checks.build(ds)]
    gpu_keys = [key for a in assets if a.is_executable and a.op.pool == "gpu" for key in a.keys]
    # The report waits on the attributors: in the same sensor, it sees them about to be requested.
    gpu_keys += [ds.key("attribution_report") for ds in specs]
    sensor, schedules = build_discovery([j for j in jobs if j.name.rsplit("__", 1)[-1] in DISCOVERY_JOBS], specs)
    return dg.Definitions(
        assets=assets,
        asset_checks=asset_checks,
        jobs=jobs,
        sensors=[sensor, build_query_sensor(), *automation_sensors(gpu_keys)],
        schedules=[*schedules, *build_retrain_schedules(jobs, specs, list(resource.datasets()))],
        resources={"manifpt": resource, "dask": dask or DaskResource()},
    )


DISCOVERY_JOBS = {"observe_real", "observe_models"}  # what discovery may launch



def resource_from_env() -> ManifptResource:
    """The resource of a code location started by ``dagster dev`` / ``manifpt ui``: home, profile, config file
    and device from ``MANIFPT_HOME``, ``_PROFILE``, ``_CONFIG``, ``_DEVICE`` (defaults: ``./.manifpt``, demo)."""
    return ManifptResource(home=os.path.abspath(os.environ.get(ENV_HOME, DEFAULT_HOME)),
                           profile=os.environ.get(ENV_PROFILE, "demo"), config_file=os.environ.get(ENV_CONFIG, ""),
                           device=os.environ.get(ENV_DEVICE, ""))


def dask_from_env() -> DaskResource:
    """The Dask resource of a code location started by ``manifpt ui --workers N / --scheduler ADDRESS``
    (``MANIFPT_DASK_WORKERS``, ``MANIFPT_DASK_ADDRESS``; unset: the settings' ``cluster.*``)."""
    return DaskResource(address=os.environ.get(ENV_DASK_ADDRESS, ""),
                        workers=int(os.environ.get(ENV_DASK_WORKERS, "") or 0))


defs = build_definitions(resource_from_env(), dask_from_env())
