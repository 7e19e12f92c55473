"""Recompute only what changed, read from Dagster's event log.

A deployment is driven the way a deployment is: the discovery sensor registers
the models, then automation ticks request runs, which the test executes, until
nothing more is requested. That is done once for the module (models alpha and
beta); every test then starts from its own copy of that settled deployment
(benchmark folder, store, Dagster instance and automation cursor), so the tests
pass alone and in any order: (a) nothing changed → nothing requested; (b) a new
model folder → exactly its work plus the attributors, baselines and report;
(d) a forced rerun reuses every stored output; (c) with gamma added as in (b),
an edited real image changes the real data version and marks what depends on
it stale.
"""

import shutil
import time

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from dagster._core.definitions.data_version import (
    CachingStaleStatusResolver,
    StaleStatus,
    extract_data_version_from_entry,
)
from dagster._core.loader import LoadingContextForTest

from assets.automation import ON_CHANGE
from assets.partitions import DatasetSpec

OBSERVED_SOURCES = {"real_source", "model_source", "model_set"}  # observed by the hourly cron too
from assets.resources import ManifptResource
from pipelines.driver import AutomationDriver
from pipelines.jobs import build_jobs, partition_keys

DS = "bench"
SPACES = ("rgb", "freq", "sl", "ssl")
BASELINES = ("mccloskey", "nataraj", "durall-lr", "durall-svm", "dzanic", "raw-blurjpeg")


class Deployment(AutomationDriver):
    """The driver over the home in ``tmp_path``, with the benchmark folder and config file there."""

    def __init__(self, tmp_path, instance, cursor=None):
        self.config = tmp_path / "bench.toml"
        self.root = tmp_path / "bench"
        super().__init__(ManifptResource(home=str(tmp_path / "home"), profile="tiny", config_file=str(self.config),
                                         device="cpu"), instance, cursor)

    def data_version(self, name: str) -> dg.DataVersion | None:
        record = self.instance.get_latest_data_version_record(dg.AssetKey([DS, name]))
        return extract_data_version_from_entry(record.event_log_entry) if record else None

    def stale_status(self, name: str, partition=None) -> StaleStatus:
        resolver = CachingStaleStatusResolver(self.instance, self.graph, LoadingContextForTest(self.instance))
        return resolver.get_status(dg.AssetKey([DS, name]), partition)


@pytest.fixture(scope="module")
def settled(tmp_path_factory, config_writer):
    """Materialize everything once, from nothing (the expensive part, once per module), then keep a snapshot of
    the whole folder (benchmark, config, store, Dagster instance) and the automation's cursor."""
    work = tmp_path_factory.mktemp("automation")
    config_writer(work)
    (work / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(work / "dagster")) as instance:
        deployment = Deployment(work, instance)
        assert deployment.tick() == {}  # the first evaluation only sets the automation's baseline
        found = deployment.sensor()
        (added,) = found.dynamic_partitions_requests
        assert sorted(added.partition_keys) == ["alpha", "beta"]
        deployment.settle()
        cursor = deployment.cursor
    snapshot = tmp_path_factory.mktemp("automation_snapshot") / "settled"
    shutil.copytree(work, snapshot, symlinks=True)  # the instance is closed: its sqlite files are complete
    return work, snapshot, cursor


@pytest.fixture
def deployment(settled):
    """The settled deployment, restored for each test from the snapshot, at the same paths (the config and the
    store name them) and with file times kept, whatever an earlier test changed."""
    work, snapshot, cursor = settled
    shutil.rmtree(work)
    shutil.copytree(snapshot, work, symlinks=True)
    with dg.instance_for_test(temp_dir=str(work / "dagster")) as instance:
        yield Deployment(work, instance, cursor)


def write_gamma(root, png_writer):
    """A third model folder, gamma: noise with a diagonal pattern."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:12, 0:12]
    diagonal = 60.0 * ((yy - xx) % 4 == 0)
    png_writer(root / "gamma", np.clip(rng.uniform(0, 200, (60, 12, 12)) + diagonal, 0, 255).astype(np.uint8)[:, None])


@pytest.fixture
def deployment_with_gamma(deployment, png_writer):
    """The settled deployment after gamma's folder was added and the automation settled again (as in (b))."""
    write_gamma(deployment.root, png_writer)
    deployment.sensor()
    deployment.settle()
    return deployment


def _expected_for(models: list[str]) -> set[tuple[str, str | None]]:
    """Every asset partition of a full materialization with ``models``."""
    one = [(f"{DS}/{a}", None) for a in ("real_images", "raw_control", "robustness", "attribution_report",
                                               "feature_table")]
    per_model = [(f"{DS}/{a}", m) for a in ("generator", "generated_images") for m in models]
    per_space = [(f"{DS}/{a}", s) for a in ("embedding_space", "real_embeddings", "reference_index", "real_artifacts",
                                           "attributor") for s in SPACES]
    per_pair = [(f"{DS}/{a}", f"{m}|{s}") for a in ("generated_embeddings", "generated_artifacts")
                for m in models for s in SPACES]
    return {*one, *per_model, *per_space, *per_pair, *((f"{DS}/baseline", b) for b in BASELINES)}


@pytest.mark.slow
def test_automation_materializes_everything_once_from_nothing(deployment):
    counts = deployment.materializations()
    assert set(counts) == _expected_for(["alpha", "beta"])
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}  # no change handled twice
    assert (deployment.root.parent / "home" / "store" / DS / "reports" / "report.md").is_file()


@pytest.mark.slow
def test_a_nothing_changed_requests_nothing(deployment):
    before = deployment.materializations()
    for _ in range(3):
        assert deployment.tick() == {}
    assert deployment.sensor().skip_reason
    assert deployment.materializations() == before


@pytest.mark.slow
def test_b_a_new_model_folder_costs_only_its_own_work(deployment, png_writer):
    write_gamma(deployment.root, png_writer)
    before = deployment.materializations()

    found = deployment.sensor()
    (added,) = found.dynamic_partitions_requests
    assert list(added.partition_keys) == ["gamma"]  # exactly one partition
    assert [r.partition_key for r in found.run_requests] == ["gamma"]  # a run observing its folder
    deployment.settle()

    new = deployment.materializations() - before
    expected = {(f"{DS}/generator", "gamma"), (f"{DS}/generated_images", "gamma"),
                *((f"{DS}/{a}", f"gamma|{s}") for a in ("generated_embeddings", "generated_artifacts") for s in SPACES),
                *((f"{DS}/attributor", s) for s in SPACES), (f"{DS}/raw_control", None),
                *((f"{DS}/baseline", b) for b in BASELINES), (f"{DS}/robustness", None),
                (f"{DS}/attribution_report", None), (f"{DS}/feature_table", None)}
    assert set(new) == expected
    assert set(new.values()) == {1}
    # nothing of the real images, the spaces, the indexes or the other models ran again
    assert not any(asset.endswith(("real_images", "real_embeddings", "reference_index", "embedding_space",
                                   "real_artifacts")) or (part or "").split("|")[0] in ("alpha", "beta")
                   for asset, part in new)
    report = deployment.root.parent / "home" / "store" / DS / "reports" / "report.json"
    assert '"gamma"' in report.read_text()
    # The automation requested enrollment, not a full retrain: the event log's latest materialization of every
    # attributor, the control and the CNN baseline says gamma was enrolled into the networks trained without it.
    for asset, partitions in (("attributor", SPACES), ("raw_control", [None]), ("baseline", ["raw-blurjpeg"])):
        for partition in partitions:
            records = deployment.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey([DS, asset]),
                                      asset_partitions=[partition] if partition else None), limit=1).records
            training = records[0].asset_materialization.metadata["training"].value
            assert "enrolled gamma" in training and "trained in full" in training, (asset, partition, training)


@pytest.mark.slow
def test_d_a_forced_rerun_reuses_every_stored_output(deployment):
    models = sorted(deployment.instance.get_dynamic_partitions(f"models_{DS}"))
    ds = DatasetSpec(DS, SPACES, BASELINES)
    keys = partition_keys(ds, models)
    reused = []
    for job, partitioning in build_jobs(ds):
        for key in keys[partitioning]:
            result = deployment.execute_job(job.name, key)
            reused += [e.materialization.metadata["reused"].value for e in result.get_asset_materialization_events()]
    assert len(reused) == len(_expected_for(models)) and all(reused)
    # the reruns kept every data version, so the automation has nothing to do (but the hourly re-observation of
    # the sources, when the hour turned since the last tick)
    hour_turned = int(time.time() // 3600) != int(deployment.last_tick // 3600)
    requested = deployment.tick()
    if hour_turned:
        requested = {k: v for k, v in requested.items() if k.path[-1] not in OBSERVED_SOURCES}
    assert requested == {} and deployment.tick() == {}


@pytest.mark.slow
def test_c_editing_one_real_image_changes_the_real_version_and_marks_downstream_stale(deployment_with_gamma,
                                                                                      png_writer):
    deployment = deployment_with_gamma
    assert deployment.stale_status("real_images") == StaleStatus.FRESH
    assert deployment.stale_status("real_embeddings", "rgb") == StaleStatus.FRESH
    image = sorted((deployment.root / "real" / "small").iterdir())[0]
    png_writer(image.parent, np.full((1, 1, 12, 12), 255, np.uint8))  # rewrites 0000.png with other pixels
    before = deployment.data_version("real_source")
    deployment.execute_job(f"{DS}__observe_real")
    after = deployment.data_version("real_source")
    assert after != before and after is not None
    assert deployment.stale_status("real_images") == StaleStatus.STALE
    assert deployment.stale_status("real_embeddings", "rgb") == StaleStatus.FRESH  # until the real images change
    # the automation requests the real images first, and only them
    requested = deployment.tick()
    assert requested == {dg.AssetKey([DS, "real_images"]): {None}}
    deployment.execute(requested)
    assert deployment.stale_status("real_images") == StaleStatus.FRESH
    for name, partition in (("real_embeddings", "rgb"), ("embedding_space", "ssl"), ("raw_control", None)):
        assert deployment.stale_status(name, partition) == StaleStatus.STALE, name
    # then what reads the real images directly, every partition; the report waits for them
    requested = deployment.tick()
    children = deployment.graph.get(dg.AssetKey([DS, "real_images"])).child_keys
    assert set(requested) == children
    assert requested[dg.AssetKey([DS, "real_embeddings"])] == set(SPACES)
    assert requested[dg.AssetKey([DS, "generator"])] == {"alpha", "beta", "gamma"}


def test_on_change_ignores_a_rematerialization_that_keeps_the_data_version(tmp_path):
    """Not eager(): an upstream run that reproduces its data version requests nothing downstream."""
    version = {"a": "1"}

    @dg.asset(code_version="1", automation_condition=ON_CHANGE)
    def a() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=dg.DataVersion(version["a"]))

    @dg.asset(code_version="1", deps=[a], automation_condition=ON_CHANGE)
    def b() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=dg.DataVersion("b"))

    defs = dg.Definitions(assets=[a, b])
    with dg.instance_for_test() as instance:
        def tick(cursor):
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
            return result.total_requested, result.cursor

        _, cursor = tick(None)
        dg.materialize([a, b], instance=instance)
        n, cursor = tick(cursor)
        assert n == 0
        dg.materialize([a, b], instance=instance, selection=[a])  # same data version
        n, cursor = tick(cursor)
        assert n == 0
        version["a"] = "2"
        dg.materialize([a, b], instance=instance, selection=[a])
        n, cursor = tick(cursor)
        assert n == 1  # b, once
        n, cursor = tick(cursor)
        assert n == 0
        assert dg.AutomationCondition.eager().get_label() != ON_CHANGE.get_label()


QUERY = "queries/query_attribution"


@pytest.mark.slow
def test_e_a_query_set_is_attributed_once_and_again_only_when_its_images_change(deployment, png_writer):
    home = deployment.root.parent / "home"
    folder = home / "queries" / "suspects"
    for name in ("0000.png", "0001.png", "0002.png"):
        (folder / "alpha").mkdir(parents=True, exist_ok=True)
        shutil.copy(deployment.root / "alpha" / name, folder / "alpha" / name)
    before = deployment.materializations()
    found = deployment.sensor("query_set_sensor")
    assert [list(r.partition_keys) for r in found.dynamic_partitions_requests] == [["suspects"]]
    assert not found.run_requests  # the automation requests the run, not the sensor
    deployment.settle()
    new = deployment.materializations() - before
    assert new == {(QUERY, "suspects"): 1}  # nothing upstream ran
    result = folder / "attribution.parquet"
    table = pq.read_table(result)
    assert table.num_rows == 3 * 9 and set(table.column("dataset").to_pylist()) == {DS}
    # unchanged images (even rewritten with the same bytes): nothing to do
    image = folder / "alpha" / "0000.png"
    image.write_bytes(image.read_bytes())
    assert deployment.sensor("query_set_sensor").skip_reason
    assert deployment.tick() == {} and deployment.tick() == {}
    # one image more: the query set alone is attributed again
    shutil.copy(deployment.root / "beta" / "0000.png", folder / "beta.png")
    assert deployment.sensor("query_set_sensor").asset_events
    deployment.settle()
    assert deployment.materializations() - before == {(QUERY, "suspects"): 2}
    assert pq.read_table(result).num_rows == 4 * 9
