"""The full-retrain schedules: with ``attribution.retrain = "enroll"`` a new model is enrolled into the stored
attributors; these schedules (off by default; turn them on in the UI) retrain the attributors, the control, the
CNN baselines and the robustness table's augmented twins of a dataset from scratch on every registered model, at
``attribution.full_retrain_cron``."""

import dagster as dg

from assets.attribution import RETRAIN_TAG
from assets.partitions import DatasetSpec
from manifpt_core.config import Settings

# (job, schedule, partitioning: "space", "baseline" or "none"), as in pipelines.jobs.STAGES
RETRAINED = (("attribution", "full_retrain_attributors", "space"), ("control", "full_retrain_control", "none"),
             ("baselines", "full_retrain_baselines", "baseline"), ("robustness_eval", "full_retrain_twins", "none"))


def build_retrain_schedules(jobs: list[dg.JobDefinition], specs: list[DatasetSpec], datasets: list[Settings]
                            ) -> list[dg.ScheduleDefinition]:
    """Per dataset, one schedule for each of its attributors job (a run per space), control job, baselines job (a
    run per baseline; classical ones are fit again anyway) and robustness job (the twins), all tagged
    ``manifpt/retrain = full``."""
    by_name = {job.name: job for job in jobs}
    crons = {s.dataset: s.attribution.full_retrain_cron for s in datasets}
    return [_schedule(ds, by_name[ds.job_name(job)], name, crons[ds.name], partitioning)
            for ds in specs for job, name, partitioning in RETRAINED if ds.job_name(job) in by_name]


def _schedule(ds: DatasetSpec, job: dg.JobDefinition, name: str, cron: str, partitioning: str
              ) -> dg.ScheduleDefinition:
    keys = {"space": list(ds.spaces), "baseline": list(ds.baselines), "none": [None]}[partitioning]

    @dg.schedule(name=ds.job_name(name), cron_schedule=cron, job=job, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"{ds.name}: {job.name} from scratch on every registered model (attribution.retrain = "
                             "full for these runs)")
    def full_retrain(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tags = {RETRAIN_TAG: "full"}
        stamp = context.scheduled_execution_time.isoformat()  # one run per partition and scheduled time
        return [dg.RunRequest(run_key=f"{stamp}:{key}", partition_key=key, tags=tags) for key in keys]

    return full_retrain
