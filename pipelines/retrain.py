"""The full-retrain schedules: with ``attribution.retrain = "enroll"`` a new model is enrolled into the stored
attributors; these schedules (off by default; turn them on in the UI) retrain the attributors and the control of a
dataset from scratch on every registered model, at ``attribution.full_retrain_cron``."""

import dagster as dg

from assets.attribution import RETRAIN_TAG
from assets.partitions import DatasetSpec
from manifpt_core.config import Settings

RETRAINED = (("attribution", "full_retrain_attributors"), ("control", "full_retrain_control"))  # (job, schedule)


def build_retrain_schedules(jobs: list[dg.JobDefinition], specs: list[DatasetSpec], datasets: list[Settings]
                            ) -> list[dg.ScheduleDefinition]:
    """Per dataset, one schedule for its attributors job (a run per space) and one for its control job, both
    tagged ``manifpt/retrain = full``."""
    by_name = {job.name: job for job in jobs}
    crons = {s.dataset: s.attribution.full_retrain_cron for s in datasets}
    return [_schedule(ds, by_name[ds.job_name(job)], name, crons[ds.name]) for ds in specs for job, name in RETRAINED]


def _schedule(ds: DatasetSpec, job: dg.JobDefinition, name: str, cron: str) -> dg.ScheduleDefinition:
    partitioned = job.name == ds.job_name("attribution")

    @dg.schedule(name=ds.job_name(name), cron_schedule=cron, job=job, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"{ds.name}: retrain {'every space attributor' if partitioned else 'the control'} from "
                             "scratch on every registered model (attribution.retrain = full for these runs)")
    def full_retrain(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tags = {RETRAIN_TAG: "full"}
        stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        if partitioned:
            return [dg.RunRequest(run_key=f"{stamp}:{space}", partition_key=space, tags=tags) for space in ds.spaces]
        return [dg.RunRequest(run_key=stamp, tags=tags)]

    return full_retrain
