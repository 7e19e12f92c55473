"""Model discovery: which generative models each dataset has, kept in step with its dynamic partitions.

A new model folder (or zoo entry) becomes a partition, and a run observes its
source; the automation then materializes what the new model needs. A model
whose folder or entry is gone loses its partition at once, and the attributors and baselines are retrained
without it; its stored data is kept (``removed_models = "keep"``) or, with ``"delete"``, deleted only once it
has been missing in ``removal_grace_checks`` consecutive checks and for ``removal_grace_minutes``, and no run in
progress targets its partition. Until then it is a *pending removal*, kept in
``<store>/<dataset>/.pending_removals.json``; a folder that comes back in time keeps its data, and its new
partition reuses it (every fingerprint is unchanged).

A folder that cannot be a model (a bad name, a link leaving its root) is skipped and reported in every check:
the sensor logs it and puts it in its skip reason, so the tick shows it.

The sensor runs this check every minute; the schedule, off by
default (one per dataset), runs the same check hourly for deployments that keep sensors off.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from assets.partitions import DatasetSpec, models_partition_name
from assets.resources import ManifptResource
from manifpt_core.config import Settings
from manifpt_core.names import REAL
from manifpt_core.sources import SkippedFolder
from manifpt_core.steps.generators import configured_and_skipped, model_set_version
from manifpt_core.store import Store, atomic_path, remove_paths

logger = logging.getLogger(__name__)

DISCOVERY_CRON = "0 * * * *"
PENDING_REMOVALS_FILE = ".pending_removals.json"  # in the dataset's store folder (hidden: not a product)
PENDING_FORMAT = "manifpt.pending_removals/1"
PARTITION_TAG = "dagster/partition"
# A run in one of these states may still read a model's stored data: its deletion waits for it.
ACTIVE_RUN_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                       dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass
class Discovery:
    """What one check found for one dataset: partitions to add and delete, the observations to record, the
    runs to request, the model folders skipped, and the removed models whose data was deleted or still waits
    for its grace period."""

    dataset: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    run_requests: list[dg.RunRequest] = field(default_factory=list)
    observations: list[dg.AssetObservation] = field(default_factory=list)
    skipped: list[SkippedFolder] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    @property
    def partitions(self) -> dg.DynamicPartitionsDefinition:
        return dg.DynamicPartitionsDefinition(name=models_partition_name(self.dataset))

    @property
    def changed(self) -> bool:
        """Whether the check has something to apply or report beyond the skipped folders."""
        return bool(self.added or self.removed or self.run_requests or self.deleted)


def discover(instance: dg.DagsterInstance, manifpt: ManifptResource, now: float | None = None) -> list[Discovery]:
    """The datasets whose check (:func:`check_datasets`) changed something, one Discovery each."""
    return [change for change in check_datasets(instance, manifpt, now=now) if change.changed]


def check_datasets(instance: dg.DagsterInstance, manifpt: ManifptResource, datasets: list[str] | None = None,
                   now: float | None = None) -> list[Discovery]:
    """Compare each dataset's configured models with its partitions; one Discovery per dataset (of
    ``datasets``, default all), changed or not.

    New models: add their partitions and request a run observing each one's source; the automation takes it
    from there. Removed models: delete their partitions, and with ``removed_models = "delete"`` start their
    grace period (:func:`settle_removals`). Either way the new ``model_set`` version is recorded, which makes
    the automation retrain the attributors, the control and the baselines on the models there are now (and
    then refresh the report). A dataset whose real source was never observed gets a run observing it.
    ``now`` (seconds since the epoch) is the time of the check.
    """
    now = time.time() if now is None else now
    found = []
    for settings in manifpt.datasets():
        if datasets is not None and settings.dataset not in datasets:
            continue
        ds = DatasetSpec.of(settings)
        known = set(instance.get_dynamic_partitions(ds.models.name))
        configured, skipped = configured_and_skipped(settings)
        change = Discovery(ds.name, added=[m for m in configured if m not in known], removed=sorted(known - set(configured)),
                           skipped=skipped)
        if instance.get_latest_data_version_record(ds.key("real_source")) is None:
            change.run_requests.append(dg.RunRequest(job_name=ds.job_name("observe_real"),
                                                     run_key=f"{ds.name}:observe_real:first"))
        change.run_requests += [dg.RunRequest(job_name=ds.job_name("observe_models"), partition_key=m,
                                              run_key=f"{ds.name}:observe:{m}:{model_set_version(configured)}")
                                for m in change.added]
        if change.added or change.removed:
            change.observations.append(dg.AssetObservation(
                ds.key("model_set"), tags={DATA_VERSION_TAG: model_set_version(configured)},
                description=f"added {change.added}, removed {change.removed}"))
        change.deleted, change.pending = settle_removals(instance, ds, settings, manifpt.store(ds.name), configured,
                                                         change.removed, now)
        found.append(change)
    return found


def settle_removals(instance: dg.DagsterInstance, ds: DatasetSpec, settings: Settings, store: Store,
                    configured: list[str], removed: list[str], now: float) -> tuple[list[str], list[str]]:
    """Count one more check for each removed model and delete the stored data of those past their grace period;
    returns ``(deleted, still pending)``.

    A model is pending from the check that finds its folder (or entry) gone until its data is deleted, or until
    it is configured again (its data then stays, for its new partition to reuse). Its data is deleted once it
    has been missing in ``removal_grace_checks`` consecutive checks, for at least ``removal_grace_minutes``, and
    no run in progress targets its partition. With ``removed_models = "keep"`` nothing is ever pending.
    """
    path = pending_removals_path(store)
    if settings.removed_models != "delete":
        if path.exists():  # switched back to keep: nothing is deleted any more
            _save_pending(path, {})
        return [], []
    before = load_pending_removals(store)
    pending = {model: dict(entry) for model, entry in before.items() if model not in configured}
    for model in before.keys() - pending.keys():
        logger.info("%s: model %s is back within its grace period; its stored data is kept", ds.name, model)
    for model in removed:
        if model != REAL:  # a partition wrongly named `real`: never delete the real images with it
            pending.setdefault(model, {"first_missing": now, "checks": 0})
    deleted = []
    for model, entry in sorted(pending.items()):
        entry["checks"] += 1
        waited = now - entry["first_missing"]
        if entry["checks"] < settings.removal_grace_checks or waited < 60 * settings.removal_grace_minutes:
            continue
        runs = runs_targeting(instance, ds, model)
        if runs:
            logger.info("%s: model %s is past its grace period, but runs in progress target it (%s): its data is "
                        "deleted once they end", ds.name, model, ", ".join(runs))
            continue
        removed_paths = remove_paths(store.paths.model_paths(model, settings.spaces))
        logger.info("removed model %s of %s: missing in %d checks over %.1f min, deleted %d stored paths", model,
                    ds.name, entry["checks"], waited / 60, len(removed_paths))
        deleted.append(model)
    for model in deleted:
        del pending[model]
    if pending != before:
        _save_pending(path, pending)
    return deleted, sorted(pending)


def runs_targeting(instance: dg.DagsterInstance, ds: DatasetSpec, model: str) -> list[str]:
    """The ids of the runs in progress (queued to canceling) of the dataset's partition ``model``."""
    records = instance.get_run_records(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES, tags={PARTITION_TAG: model}))
    return [r.dagster_run.run_id for r in records if _targets_dataset(r.dagster_run, ds)]


def _targets_dataset(run: dg.DagsterRun, ds: DatasetSpec) -> bool:
    """Whether a run reads the dataset: its job or selected assets are the dataset's. A run of the implicit asset
    job without a selection counts too (it may read anything)."""
    if run.asset_selection:
        return any(key.path[0] == ds.name for key in run.asset_selection)
    return run.job_name.startswith(ds.job_name("")) or run.job_name.startswith("__")


def pending_removals_path(store: Store) -> Path:
    """Where the dataset's pending removals are kept: a small JSON file in its store folder."""
    return store.paths.base / PENDING_REMOVALS_FILE


def load_pending_removals(store: Store) -> dict[str, dict[str, Any]]:
    """The pending removals: ``{model: {"first_missing": seconds since the epoch, "checks": n}}``. A file that
    cannot be read is logged and counted as empty: the grace periods start again, which deletes later, never
    sooner."""
    path = pending_removals_path(store)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        if data.get("format") != PENDING_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {PENDING_FORMAT!r}")
        models = data["models"]
        return {str(m): {"first_missing": float(e["first_missing"]), "checks": int(e["checks"])}
                for m, e in models.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        logger.warning("pending removals %s cannot be read (%s): the grace periods of removed models start again",
                       path, err)
        return {}


def _save_pending(path: Path, pending: dict[str, dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"format": PENDING_FORMAT, "models": pending}, indent=2, sort_keys=True))


def skipped_report(found: list[Discovery]) -> list[str]:
    """One line per skipped model folder: the dataset, the folder and the reason with its fix."""
    return [f"{change.dataset}: {skipped}" for change in found for skipped in change.skipped]


def _skip_reason(skipped: list[str]) -> str:
    """A tick's skip reason, with the skipped model folders (so the tick shows them)."""
    reason = "no model added or removed"
    return reason + (f"; {len(skipped)} model folders skipped: " + "; ".join(skipped) if skipped else "")


def build_discovery(jobs: list[dg.JobDefinition], specs: list[DatasetSpec]
                    ) -> tuple[dg.SensorDefinition, list[dg.ScheduleDefinition]]:
    """The discovery sensor (on by default, able to launch ``jobs``) and one schedule per dataset (off by
    default) running the same check hourly."""

    @dg.sensor(name="model_discovery_sensor", jobs=jobs, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def model_discovery_sensor(context: dg.SensorEvaluationContext, manifpt: ManifptResource) -> dg.SensorResult:
        """Adds a partition for each new model folder or zoo entry and observes it; deletes the partitions
        of removed ones; records the new set of models, so that the automation retrains the attributors."""
        checked = check_datasets(context.instance, manifpt)
        skipped = skipped_report(checked)
        for line in skipped:
            context.log.warning(f"model folder skipped: {line}")
        for change in checked:
            if change.deleted:
                context.log.info(f"{change.dataset}: deleted the stored data of removed models {change.deleted}")
            if change.pending:
                context.log.info(f"{change.dataset}: removed models whose data is kept until their grace period "
                                 f"ends: {change.pending}")
        found = [change for change in checked if change.changed]
        if not found:
            return dg.SensorResult(skip_reason=_skip_reason(skipped))
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
        change = next(iter(check_datasets(context.instance, manifpt, [ds.name])), None)
        skipped = skipped_report([change] if change is not None else [])
        for line in skipped:
            context.log.warning(f"model folder skipped: {line}")
        if change is None or not change.changed:
            return dg.SkipReason(_skip_reason(skipped))
        # A schedule cannot return partition requests or observations: it records them itself.
        if change.added:
            context.instance.add_dynamic_partitions(change.partitions.name, change.added)
        for model in change.removed:
            context.instance.delete_dynamic_partition(change.partitions.name, model)
        for observation in change.observations:
            context.instance.report_runless_asset_event(observation)
        return [r for r in change.run_requests if r.job_name == job.name] or dg.SkipReason("partitions updated")

    return model_discovery_schedule
