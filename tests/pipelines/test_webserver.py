"""`manifpt ui` serves the code location on 127.0.0.1 and runs what the UI launches; it stops cleanly by PID."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

from tests.pipelines.test_main_run import write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@pytest.mark.slow
def test_ui_serves_and_launches_a_run(tmp_path):
    config = write_config(tmp_path)
    port = free_port()
    manifpt = Path(sys.executable).with_name("manifpt")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANIFPT_", "DAGSTER_"))}
    cmd = [str(manifpt), "ui", "--profile", "tiny", "--config", str(config), "--home", str(tmp_path / "home"),
           "--device", "cpu", "--port", str(port)]
    log = open(tmp_path / "ui.log", "w")
    # A session of its own, so the whole process group (webserver, daemon, code server) can be stopped.
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info", 120)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = client.submit_job_execution("bench__real_ingestion")
        deadline = time.monotonic() + 180
        status = client.get_run_status(run_id)
        while status.value not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
            time.sleep(2)
            status = client.get_run_status(run_id)
        assert status.value == "SUCCESS", (tmp_path / "ui.log").read_text()[-3000:]
        assert (tmp_path / "home" / "store" / "bench" / "images" / "real.zarr").is_dir()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=120)  # the daemon finishes a sensor tick first; slow on a busy 2-core machine
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            raise
        log.close()
    assert server.returncode is not None
