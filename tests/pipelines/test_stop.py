"""Stopping `manifpt run` with SIGTERM or SIGINT: it exits soon with 128 + the signal, leaves no temporary
output in the store, records the run in progress as canceled, and the next run completes."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

WAIT_S = 120  # generous bounds for a loaded machine; nothing here is a timing assertion
TEMPORARY = re.compile(r"^\..+\.(tmp|link)-[0-9a-f]{12}$")  # manifpt_core.store.atomic's writes in progress
# Inside a step: the sl space's encoder is training (its progress bar is on stderr), so a run is in progress.
COMPUTING = "train sl encoder"


def start_run(config: Path, home: Path, logs: Path) -> subprocess.Popen:
    """`manifpt run` on the tiny benchmark; its output goes to ``logs``/out.txt and err.txt."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANIFPT_") and k != "DAGSTER_HOME"}
    command = [sys.executable, "-m", "pipelines.cli", "run", "--profile", "tiny", "--config", str(config),
               "--home", str(home), "--device", "cpu"]
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "out.txt").open("w") as out, (logs / "err.txt").open("w") as err:
        return subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=Path(__file__).resolve().parents[2])


def wait_for_line(proc: subprocess.Popen, logs: Path, wanted: str, stream: str = "out.txt") -> None:
    """Until the command prints ``wanted`` on ``stream`` (it fails if the command ends first, or after WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while wanted not in (logs / stream).read_text():
        assert proc.poll() is None, f"ended before {wanted!r}:\n{(logs / 'err.txt').read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{wanted!r} never printed"
        time.sleep(0.1)


def temporaries(home: Path) -> list[Path]:
    return [p for p in home.rglob(".*") if TEMPORARY.match(p.name)]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_which_is_recorded_as_canceled(tmp_path, config_writer, signum):
    config, home, logs = config_writer(tmp_path), tmp_path / "home", tmp_path / "first"
    proc = start_run(config, home, logs)
    try:
        wait_for_line(proc, logs, COMPUTING, "err.txt")
        proc.send_signal(signum)
        code = proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (logs / "err.txt").read_text()
    assert code == 128 + signum, stderr[-3000:]
    assert f"stopped by {signum.name}" in stderr
    assert temporaries(home) == []

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs()
        assert not [r for r in runs if not r.is_finished]
        [canceled] = [r for r in runs if r.status == dg.DagsterRunStatus.CANCELED]
        assert canceled.job_name == "bench__reference" and canceled.tags["dagster/partition"] == "sl"
        messages = [e.message or "" for e in instance.all_logs(canceled.run_id)]
        assert any(f"stopped by {signum.name}" in m for m in messages)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs if r.run_id != canceled.run_id)
        assert not [e for e in instance.all_logs(canceled.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)]

    if signum == signal.SIGTERM:  # the next run picks up where the stopped one left
        proc = start_run(config, home, tmp_path / "second")
        assert proc.wait(timeout=20 * WAIT_S) == 0, (tmp_path / "second" / "err.txt").read_text()[-3000:]
        assert "report at" in (tmp_path / "second" / "out.txt").read_text()
        assert temporaries(home) == []
