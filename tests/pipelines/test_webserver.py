"""`manifpt ui` serves the code location on 127.0.0.1: headless Chromium renders the asset graph with the five
step groups, a run launched through GraphQL succeeds, and the server stops cleanly by PID, also when started as a
script's background command (SIGINT ignored).

The code location's sensors run by default (model discovery, two automation sensors), so background runs may
start while the test runs; the launched run may queue behind them.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

CHROMIUM = "/usr/bin/chromium"
GRAPH_PAGE = "asset-groups"  # "Global asset lineage": one node per group
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WINDOW = (1600, 1000)


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def dismiss_community_modal(port: int) -> None:
    """What the modal's Skip button does: otherwise "Join the Dagster community" covers the screenshot."""
    assert graphql(port, "mutation { setNuxSeen }") == {"data": {"setNuxSeen": True}}


def chromium(profile: Path, url: str, *flags: str) -> str:
    """Load ``url`` in headless Chromium; virtual time lets the JS app fetch its data and render first."""
    # No background networking: the test machine has no outside network, and the UI needs none.
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=30000", *flags, url]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class GraphLabels(HTMLParser):
    """Texts drawn inside the graph canvas: Dagster renders graph nodes as HTML in SVG <foreignObject>s."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.labels = set()

    def handle_starttag(self, tag, attrs):
        self.depth += tag == "foreignobject"

    def handle_endtag(self, tag):
        self.depth -= tag == "foreignobject"

    def handle_data(self, data):
        if self.depth:
            self.labels.add(data.strip())


def graph_labels(html: str) -> set[str]:
    parser = GraphLabels()
    parser.feed(html)
    return parser.labels


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000, f"{path}: {len(data)} bytes, not a rendered page"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def ignore_interrupts() -> None:
    """In the child before exec: SIGINT and SIGQUIT ignored, as a shell without job control starts a command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def check_asset_graph(port: int, tmp_path: Path, step_groups: set[str]) -> None:
    url = f"http://127.0.0.1:{port}/{GRAPH_PAGE}"
    profile = tmp_path / "chromium"
    dismiss_community_modal(port)
    labels = graph_labels(chromium(profile, url, "--dump-dom"))
    assert step_groups <= labels, f"asset graph shows {sorted(labels)}"
    shot = tmp_path / "asset_graph.png"
    chromium(profile, url, f"--screenshot={shot}", "--window-size={},{}".format(*WINDOW), "--hide-scrollbars")
    assert png_size(shot) == WINDOW


def wait_for_run(client: DagsterGraphQLClient, run_id: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    status = client.get_run_status(run_id).value
    while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(2)
        status = client.get_run_status(run_id).value
    return status


@pytest.mark.slow
def test_ui_serves_and_launches_a_run(tmp_path, config_writer, step_groups, free_port, wait_for):
    if not Path(CHROMIUM).is_file():  # installed in CI: a missing browser is a failure, not a skip
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    config = config_writer(tmp_path)
    port = free_port()
    manifpt = Path(sys.executable).with_name("manifpt")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANIFPT_", "DAGSTER_"))}
    cmd = [str(manifpt), "ui", "--profile", "tiny", "--config", str(config), "--home", str(tmp_path / "home"),
           "--device", "cpu", "--port", str(port)]
    log = open(tmp_path / "ui.log", "w")
    # A session of its own, so the whole process group (webserver, daemon, code server) can be stopped; started
    # as a script's background command is (a shell without job control ignores SIGINT and SIGQUIT in it), which
    # `manifpt ui` must undo for dagster dev to stop its services.
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              preexec_fn=ignore_interrupts)
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info", 120)
        check_asset_graph(port, tmp_path, step_groups)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = client.submit_job_execution("bench__real_ingestion")
        # Sensor-started runs may hold the run queue (two at a time) for a while first.
        status = wait_for_run(client, run_id, 300)
        assert status == "SUCCESS", (tmp_path / "ui.log").read_text()[-3000:]
        assert (tmp_path / "home" / "store" / "bench" / "images" / "real.zarr").is_dir()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        hung = False
        try:
            # It stops within seconds; the bound only tells a stop from a hang on a busy 2-core machine.
            server.wait(timeout=180)
        except subprocess.TimeoutExpired:
            hung = True
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)
        log.close()
    assert not hung, ("dagster dev did not stop within 180 s of SIGTERM (stopped with SIGKILL):\n"
                      + (tmp_path / "ui.log").read_text()[-2000:])
