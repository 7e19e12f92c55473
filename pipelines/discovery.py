"""Model discovery: which generative models each dataset has, kept in step with its dynamic partitions.

A new model folder (or zoo entry) becomes a partition, and a run observes its
source; the automation then materializes what the new model needs. A model
whose folder or entry is gone loses its partition; its stored data is kept or
deleted (``removed_models``), and the attributors and baselines are retrained
without it. The sensor runs this check every minute; the schedule, off by
default (one per dataset), runs the same check hourly for deployments that keep sensors off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from assets.partitions import DatasetSpec, models_partition_name
from assets.resources import ManifptResource
from manifpt_core.names import REAL
from manifpt_core.steps.generators import configured_models, model_set_version
from manifpt_core.store import remove_paths

logger = logging.getLogger(__name__)

DISCOVERY_CRON = "0 * * * *"


@dataclass
class Discovery:
    """What one check found for one dataset: partitions to add and delete, the observations to record, and the
    runs to request."""

    dataset: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    run_requests: list[dg.RunRequest] = field(default_factory=list)
    observations: list[dg.AssetObservation] = field(default_factory=list)

    @property
    def partitions(self) -> dg.DynamicPartitionsDefinition:
        return dg.DynamicPartitionsDefinition(name=models_partition_name(self.dataset))


def discover(instance: dg.DagsterInstance, manifpt: ManifptResource) -> list[Discovery]:
    """Compare each dataset's configured models with its partitions; one Discovery per dataset that changed.

    New models: add their partitions and request a run observing each one's source; the automation takes it
    from there. Removed models: delete their partitions, and with ``removed_models = "delete"`` their stored
    data. Either way the new ``model_set`` version is recorded, which makes the automation retrain the
    attributors, the control and the baselines on the models there are now (and then refresh the report).
    A dataset whose real source was never observed gets a run observing it.
    """
    found = []
    for settings in manifpt.datasets():
        ds = DatasetSpec.of(settings)
        known = set(instance.get_dynamic_partitions(ds.models.name))
        configured = configured_models(settings)
        change = Discovery(ds.name, added=[m for m in configured if m not in known], removed=sorted(known - set(configured)))
        if instance.get_latest_data_version_record(ds.key("real_source")) is None:
            change.run_requests.append(dg.RunRequest(job_name=ds.job_name("observe_real"),
                                                     run_key=f"{ds.name}:observe_real:first"))
        if not (change.added or change.removed or change.run_requests):
            continue
        change.run_requests += [dg.RunRequest(job_name=ds.job_name("observe_models"), partition_key=m,
                                              run_key=f"{ds.name}:observe:{m}:{model_set_version(configured)}")
                                for m in change.added]
        if change.added or change.removed:
            change.observations.append(dg.AssetObservation(
                ds.key("model_set"), tags={DATA_VERSION_TAG: model_set_version(configured)},
                description=f"added {change.added}, removed {change.removed}"))
        if change.removed and settings.removed_models == "delete":
            store = manifpt.store(ds.name)
            for model in change.removed:
                if model == REAL:  # a partition wrongly named `real`: never delete the real images with it
                    continue
                removed = remove_paths(store.paths.model_paths(model, settings.spaces))
                logger.info("removed model %s of %s: deleted %d stored paths", model, ds.name, len(removed))
        found.append(change)
    return found


def build_discovery(jobs: list[dg.JobDefinition], specs: list[DatasetSpec]
                    ) -> tuple[dg.SensorDefinition, list[dg.ScheduleDefinition]]:
    """The discovery sensor (on by default, able to launch ``jobs``) and one schedule per dataset (off by
    default) running the same check hourly."""

    @dg.sensor(name="model_discovery_sensor", jobs=jobs, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def model_discovery_sensor(context: dg.SensorEvaluationContext, manifpt: ManifptResource) -> dg.SensorResult:
        """Adds a partition for each new model folder or zoo entry and observes it; deletes the partitions
        of removed ones; records the new set of models, so that the automation retrains the attributors."""
        found = discover(context.instance, manifpt)
        if not found:
            return dg.SensorResult(skip_reason="no model added or removed")
        for change in found:
            context.log.info(f"{change.dataset}: models added {change.added}, removed {change.removed}")
        requests = [c.partitions.build_add_request(c.added) for c in found if c.added]
        requests += [c.partitions.build_delete_request(c.removed) for c in found if c.removed]
        return dg.SensorResult(run_requests=[r for c in found for r in c.run_requests],
                               dynamic_partitions_requests=requests,
                               asset_events=[o for c in found for o in c.observations])

    schedules = [_schedule(ds, next(j for j in jobs if j.name == ds.job_name("observe_models"))) for ds in specs]
    return model_discovery_sensor, schedules


def _schedule(ds: DatasetSpec, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(name=ds.job_name("model_discovery_schedule"), cron_schedule=DISCOVERY_CRON, job=job,
                 default_status=dg.DefaultScheduleStatus.STOPPED)
    def model_discovery_schedule(context: dg.ScheduleEvaluationContext, manifpt: ManifptResource):
        """The discovery sensor's check for this dataset, hourly, for deployments that keep sensors off."""
        change = next((c for c in discover(context.instance, manifpt) if c.dataset == ds.name), None)
        if change is None:
            return dg.SkipReason("no model added or removed")
        # A schedule cannot return partition requests or observations: it records them itself.
        if change.added:
            context.instance.add_dynamic_partitions(change.partitions.name, change.added)
        for model in change.removed:
            context.instance.delete_dynamic_partition(change.partitions.name, model)
        for observation in change.observations:
            context.instance.report_runless_asset_event(observation)
        return [r for r in change.run_requests if r.job_name == job.name] or dg.SkipReason("partitions updated")

    return model_discovery_schedule
