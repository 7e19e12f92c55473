"""The run launcher of ``dagster.yaml``: Dagster's default launcher, plus a health check for run monitoring.

The default launcher starts each run in a worker process on this machine but cannot tell the monitoring
daemon whether that process still lives, so a worker killed by the operating system (out of memory) left
its run STARTED for ever, holding its run slot, the ``manifpt/gpu`` run slot and the ``gpu`` pool slot.
``LocalRunLauncher`` answers the daemon from the worker's process id: the one Dagster records when the
worker starts ("Started process for run (pid: N)"), or the ``manifpt/pid`` tag of runs executed in the
process that created them (``manifpt run``). A process that has gone, is a zombie, or was started after the
run (the id reused) is a dead worker: the daemon marks its run failed, and the slots are freed.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher

PID_TAG = "manifpt/pid"  # on runs executed in the process that created them (execute_in_process)
WORKER_STARTED = ("Started process for run", "Started process for resuming job")  # Dagster's engine events
CLOCK_SLACK_S = 1.0  # process start times are rounded; the worker starts before it reports its pid


def worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int, float] | None:
    """(pid, a time the worker was already running) of ``run``'s worker process, or None if none is recorded."""
    if PID_TAG in run.tags:
        record = instance.get_run_record_by_id(run.run_id)
        return int(run.tags[PID_TAG]), record.create_timestamp.timestamp() if record else 0.0
    found = None
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT).records:
        event = record.event_log_entry
        if event.message and event.message.startswith(WORKER_STARTED):
            pid = event.dagster_event.engine_event_data.metadata.get("pid")
            if pid is not None:
                found = int(pid.value), event.timestamp  # the last one: a resumed run has a new worker
    return found


def is_alive(pid: int, running_at: float) -> bool:
    """Whether process ``pid`` runs and is the one that was already running at ``running_at`` (epoch seconds)."""
    import psutil  # a dependency of dask.distributed

    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= running_at + CLOCK_SLACK_S
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process under that id: not ours to judge, assume alive
        return True


class LocalRunLauncher(DefaultRunLauncher):
    """Dagster's default launcher (a worker process per run, on this machine) that run monitoring can ask
    whether a run's worker still lives. Resuming is not supported: ``max_resume_run_attempts: 0``."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        found = worker_pid(self._instance, run)
        if found is None:  # not started by a worker of ours (or not yet): nothing to judge
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker process id recorded")
        pid, running_at = found
        if is_alive(pid, running_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker process {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run's worker process {pid} is gone without ending the run: it was killed (by the operating "
            "system when memory ran out, or by a signal) or crashed")
