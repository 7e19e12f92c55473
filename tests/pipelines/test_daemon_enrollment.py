"""Under the real daemon: `manifpt ui` on a store materialized by `manifpt run`; a model folder dropped into the
benchmark is discovered by the sensor, its own work and the enrollment are requested by the automation, and the
report is refreshed once, with nothing else materialized again."""

import datetime
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dagster as dg
import numpy as np
import pytest


NEW_MODEL = "gamma"
UPSTREAM = {"real_images", "embedding_space", "real_embeddings", "reference_index", "real_artifacts"}
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]


def materialized_since(instance: dg.DagsterInstance, since: float) -> list[tuple[str, str | None, dict]]:
    """(asset, partition, metadata) of every materialization recorded after ``since``."""
    out = []
    for key in instance.get_asset_keys():
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, after_timestamp=since),
                                                  limit=1000).records
        for record in records:
            m = record.asset_materialization
            out.append((key.to_user_string(), m.partition, {k: v.value for k, v in m.metadata.items()}))
    return out


def runs_in_flight(instance: dg.DagsterInstance) -> int:
    return len(instance.get_run_records(dg.RunsFilter(statuses=ACTIVE)))


@pytest.mark.slow
def test_the_daemon_enrolls_a_dropped_model_and_refreshes_the_report_once(tmp_path, config_writer, png_writer,
                                                                          free_port, wait_for):
    config = config_writer(tmp_path)
    # Two spaces, one of each network kind (a CNN on image-shaped artifacts, an MLP on learned features), so the
    # daemon launches half the runs of four; one CNN baseline (it enrolls too), one classical (fit again).
    config.write_text('spaces = ["rgb", "sl"]\n' + config.read_text()
                      + '[baselines]\nmethods = ["raw-blurjpeg", "mccloskey"]\n')
    home = tmp_path / "home"
    manifpt = Path(sys.executable).with_name("manifpt")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANIFPT_", "DAGSTER_"))}
    common = ["--profile", "tiny", "--config", str(config), "--home", str(home), "--device", "cpu"]
    done = subprocess.run([str(manifpt), "run", *common], env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    port = free_port()
    log = open(tmp_path / "ui.log", "w")  # noqa: SIM115 (closed in finally, after the server)
    server = subprocess.Popen([str(manifpt), "ui", *common, "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info", 120)
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            # The daemon starts with the store complete: let its first ticks find nothing to do.
            time.sleep(35)  # one automation tick (every 30 s) at least
            assert materialized_since(instance, time.time() - 35) == [], "the daemon rematerialized a complete store"
            since = time.time()
            rng = np.random.default_rng(5)
            yy, xx = np.mgrid[0:12, 0:12]
            # Written beside the benchmark, then moved in at once, as a user copies a finished folder in.
            png_writer(tmp_path / NEW_MODEL,
                       np.clip(rng.uniform(0, 200, (60, 12, 12)) + 60.0 * ((yy - xx) % 4 == 0), 0, 255)
                       .astype(np.uint8)[:, None])
            (tmp_path / NEW_MODEL).rename(config.parent / "bench" / NEW_MODEL)
            deadline = time.monotonic() + 900
            quiet_since = None
            while time.monotonic() < deadline:
                events = materialized_since(instance, since)
                report = [e for e in events if e[0] == "bench/attribution_report"]
                busy = runs_in_flight(instance)
                if report and not busy:
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > 65:  # two automation ticks more: nothing else comes
                        break
                else:
                    quiet_since = None
                time.sleep(5)
            else:
                pytest.fail(f"no refreshed report within 15 minutes; materialized {[(a, p) for a, p, _ in events]}\n"
                            + (tmp_path / "ui.log").read_text()[-3000:])
            events = materialized_since(instance, since)
            sensor_runs = instance.get_run_records(dg.RunsFilter(
                created_after=datetime.datetime.fromtimestamp(since, tz=datetime.UTC)))
    finally:
        # Stopping cleanly is test_webserver's subject; here the result is in the event log already.
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            warnings.warn("dagster dev did not stop within 30 s of SIGTERM; stopped with SIGKILL")
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)
        log.close()

    seen = [(asset, partition) for asset, partition, _ in events]
    assert len(seen) == len(set(seen)), f"materialized twice: {sorted(seen)}"
    assert seen.count(("bench/attribution_report", None)) == 1
    for asset, partition, _ in events:
        name = asset.split("/")[-1]
        assert name not in UPSTREAM, f"{asset} was materialized again"
        if partition is not None and ("|" in partition or name in ("generator", "generated_images")):
            assert partition.split("|")[0] == NEW_MODEL, f"{asset} [{partition}] of an old model was materialized"
    attributors = {p: meta for a, p, meta in events if a == "bench/attributor"}
    assert set(attributors) == {"rgb", "sl"}
    for meta in attributors.values():
        assert "enrolled gamma" in meta["training"]
    control = next(meta for a, _, meta in events if a == "bench/raw_control")
    assert "enrolled gamma" in control["training"]
    # Every run after the drop was launched by the daemon's sensors (discovery, automation), none by hand.
    assert sensor_runs and all(r.dagster_run.tags.get("dagster/sensor_name") or
                               r.dagster_run.tags.get("dagster/from_automation_condition")
                               for r in sensor_runs), [r.dagster_run.tags for r in sensor_runs]
