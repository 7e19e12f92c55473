"""Run monitoring with the repository's instance settings: a GPU run whose worker process is killed is marked
failed, its slots are freed, and the next GPU run is dequeued and runs."""

import datetime
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.launcher import WorkerStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.monitoring import concurrency as slots_monitor
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import serialize_value

from pipelines.automation import GPU_TAG
from pipelines.launcher import PID_TAG

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 180  # how long to wait for a worker process (it imports Dagster) before giving up

JOBS = '''
import time

import dagster as dg


@dg.op(pool="gpu")
def hold_the_gpu():
    time.sleep(600)


@dg.op(pool="gpu")
def use_the_gpu():
    return 1


@dg.job
def long_gpu_job():
    hold_the_gpu()


@dg.job
def next_gpu_job():
    use_the_gpu()
'''


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture
def jobs_file(tmp_path) -> Path:
    path = tmp_path / "gpu_jobs.py"
    path.write_text(textwrap.dedent(JOBS))
    return path


def create_run(instance, jobs_file, name) -> tuple[dg.DagsterRun, ReconstructableJob]:
    recon = ReconstructableJob.for_file(str(jobs_file), name)
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(executable_path=sys.executable, python_file=str(jobs_file)))
    origin = RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(code_location_origin=location, repository_name="__repository__"), job_name=name)  # queued runs need one
    run = instance.create_run_for_job(recon.get_definition(), tags={GPU_TAG: "true"}, remote_job_origin=origin,
                                      job_code_origin=recon.get_python_origin())
    return run, recon


def report(instance, run, event_type: DagsterEventType) -> None:
    """A run event, as the queued run coordinator reports it (enqueued, then starting when dequeued)."""
    instance.report_dagster_event(DagsterEvent(event_type.value, job_name=run.job_name), run_id=run.run_id)


def start_worker(instance, run, recon) -> subprocess.Popen:
    """A run worker process, as the run launcher starts one (``dagster api execute_run``)."""
    args = ExecuteRunArgs(job_origin=recon.get_python_origin(), run_id=run.run_id, instance_ref=instance.get_ref())
    command = [sys.executable, "-m", "dagster", "api", "execute_run", serialize_value(args)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.5)


def claimed_gpu_slots(instance) -> int:
    return len(instance.event_log_storage.get_concurrency_info("gpu").claimed_slots)


def monitor_once(instance, monkeypatch) -> None:
    """One iteration of the monitoring daemon: run monitoring, then slot freeing, seen from after the delay
    ``free_slots_after_run_end_seconds`` (so that the test does not wait it out)."""
    context = SimpleNamespace(instance=instance, create_request_context=lambda: None)
    logger = logging.getLogger("test_run_monitoring")
    assert all(error is None for error in execute_run_monitoring_iteration(context, logger))
    delay = instance.run_monitoring_settings.get("free_slots_after_run_end_seconds") or 0
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=delay + 1)
    monkeypatch.setattr(slots_monitor, "get_current_datetime", lambda: later)
    assert all(error is None for error in slots_monitor.execute_concurrency_slots_iteration(context, logger))


def test_killed_gpu_worker_fails_its_run_and_the_next_gpu_run_starts(instance, jobs_file, monkeypatch):
    run, recon = create_run(instance, jobs_file, "long_gpu_job")
    worker = start_worker(instance, run, recon)
    try:
        wait_for(lambda: claimed_gpu_slots(instance) == 1, "the worker to claim the gpu pool slot")
    finally:
        worker.send_signal(signal.SIGKILL)  # what the out-of-memory killer does
        worker.wait(timeout=WAIT_S)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # nothing else notices

    queued, next_recon = create_run(instance, jobs_file, "next_gpu_job")
    report(instance, queued, DagsterEventType.PIPELINE_ENQUEUED)
    coordinator = QueuedRunCoordinatorDaemon(interval_seconds=1)
    assert coordinator._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None) == []

    monitor_once(instance, monkeypatch)

    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    messages = [e.message for e in instance.all_logs(run.run_id, of_type=DagsterEventType.PIPELINE_FAILURE)]
    assert any("worker process" in m and "is gone" in m for m in messages), messages
    assert claimed_gpu_slots(instance) == 0
    dequeued = coordinator._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
    assert [r.run_id for r in dequeued] == [queued.run_id]

    # Launched as the queue daemon launches it: the run starts, claims the gpu slot and succeeds.
    report(instance, queued, DagsterEventType.PIPELINE_STARTING)
    worker = start_worker(instance, instance.get_run_by_id(queued.run_id), next_recon)
    try:
        assert worker.wait(timeout=WAIT_S) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert instance.get_run_by_id(queued.run_id).status == dg.DagsterRunStatus.SUCCESS


def test_a_live_worker_is_left_running(instance, jobs_file):
    """The health check that run monitoring asks: this process stands for a live worker; a finished one is dead."""
    run, _ = create_run(instance, jobs_file, "long_gpu_job")
    launcher = instance.run_launcher
    assert launcher.supports_check_run_worker_health
    assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING  # no pid yet

    tagged, _ = create_run(instance, jobs_file, "long_gpu_job")
    instance.add_run_tags(tagged.run_id, {PID_TAG: str(os.getpid())})
    tagged = instance.get_run_by_id(tagged.run_id)
    assert launcher.check_run_worker_health(tagged).status == WorkerStatus.RUNNING
    gone = subprocess.Popen(["true"])
    gone.wait()
    instance.add_run_tags(tagged.run_id, {PID_TAG: str(gone.pid)})
    assert launcher.check_run_worker_health(instance.get_run_by_id(tagged.run_id)).status == WorkerStatus.FAILED
