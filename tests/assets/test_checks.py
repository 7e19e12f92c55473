"""The asset checks on a materialized tiny store: each passes on the good store and fails on a copy damaged to
violate it; the blocking ones run inside the dataset's jobs."""

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from assets import checks
from manifpt_core import search
from manifpt_core.names import REAL, Method
from manifpt_core.search.settings import SearchSettings
from manifpt_core.store import Store, remove_paths
from manifpt_core.store.arrays import RECORD_KEY
from manifpt_core.store.layout import RECORD_FILE


@pytest.fixture
def damaged(query_store, tmp_path) -> Store:
    """A copy of the materialized store, to damage."""
    shutil.copytree(query_store.home.store_root, tmp_path / "store", symlinks=False)
    return Store(tmp_path / "store", query_store.settings.dataset)


def refresh_integrity(path: Path) -> None:
    """After a deliberate edit, record the output's files again where the store keeps an integrity manifest, so
    that the check sees the edited content rather than a damaged output."""
    try:
        from manifpt_core.store.integrity import INTEGRITY_FILE, write_integrity
    except ImportError:
        return
    path = Path(path).resolve()
    for folder in [path, *path.parents]:
        if (folder / INTEGRITY_FILE).is_file():
            write_integrity(folder)
            return


def edit_summary(output: Path, **changes) -> None:
    """Change fields of the summary in an output's record (``record.json``, or the Zarr attributes)."""
    output = Path(output).resolve()
    if (output / RECORD_FILE).is_file():
        record = json.loads((output / RECORD_FILE).read_text())
        record["summary"].update(changes)
        (output / RECORD_FILE).write_text(json.dumps(record))
    else:
        group = zarr.open(store=str(output), mode="r+")
        record = dict(group.attrs[RECORD_KEY])
        record["summary"] = {**record["summary"], **changes}
        group.attrs[RECORD_KEY] = record
    refresh_integrity(output / RECORD_FILE)


def rewrite_table(path: Path, table: pa.Table) -> None:
    pq.write_table(table, Path(path).resolve())
    refresh_integrity(path)


def manifest_files(store: Store, name: str) -> list[Path]:
    """The manifest files a source's rows may be read from (the published one, and the one inside its images)."""
    inner = getattr(store.paths, "images_manifest", None)
    paths = [store.paths.source_manifest(name)] + ([inner(name)] if inner else [])
    return [p for p in paths if p.is_file()]


def test_no_sample_is_its_own_neighbour(query_store, damaged):
    space = query_store.settings.spaces[0]
    for name in (REAL, "alpha", "beta"):
        result = checks.check_self_neighbours(query_store.store, space, name)
        assert result.passed, (name, result.description)
        assert result.metadata["n_self_neighbours"].value == 0
        assert result.metadata["n_samples"].value == 60
    # The manifest now says that a real-class sample is the very image of its nearest reference.
    artifacts = damaged.real.artifacts(space)
    row, nearest = int(artifacts.query_row[0]), int(artifacts.nn_id[0])
    for path in manifest_files(damaged, REAL):
        table = pq.read_table(path)
        hashes = table.column("content_hash").to_pylist()
        hashes[row] = hashes[nearest]
        index = table.schema.get_field_index("content_hash")
        rewrite_table(path, table.set_column(index, table.schema.field(index), pa.array(hashes, pa.string())))
    result = checks.check_self_neighbours(damaged, space, REAL)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR, result.description
    assert result.metadata["n_self_neighbours"].value == 1
    assert result.metadata["examples"].value == [damaged.real.manifest(["sample_id"]).column(0)[row].as_py()]


def test_an_exact_index_passes_an_approximate_one_is_measured(query_store, damaged):
    settings, space = query_store.settings, "rgb"
    exact = checks.check_index_recall(query_store.store, settings, space)
    assert exact.passed and exact.metadata["exact"].value is True

    reference = damaged.real.reference_embeddings(space)
    ivf = SearchSettings(backend="ivf", nlist=4, nprobe=4)  # every list visited: the exact answers

    def store_index(vectors: np.ndarray) -> None:
        search.save_index(search.build_index(vectors, ivf, seed=0), damaged.paths.index_file(space).resolve())
        edit_summary(damaged.paths.index(space), kind="ivf", search=ivf.settings())

    store_index(reference)
    good = checks.check_index_recall(damaged, settings, space)
    assert good.passed and good.metadata["exact"].value is False
    assert good.metadata["recall_at_1"].value == 1.0
    assert good.metadata["min_index_recall"].value == settings.checks.min_index_recall
    # An index over other vectors than the stored reference embeddings (a stale index) misses the true neighbours.
    noise = np.random.default_rng(0).normal(0, reference.std(), reference.shape).astype(np.float32)
    store_index(reference + noise)
    stale = checks.check_index_recall(damaged, settings, space)
    assert not stale.passed, stale.metadata
    assert stale.metadata["recall_at_1"].value < settings.checks.min_index_recall


def test_frechet_distance_within_a_multiple_of_the_real_floor(query_store, damaged):
    settings = query_store.settings
    result = checks.check_frechet(query_store.store, settings, "alpha")
    assert result.passed, result.metadata
    floor = result.metadata["frechet_real_floor"].value
    assert result.metadata["ratio"].value == pytest.approx(result.metadata["frechet_to_real"].value / floor)
    assert result.metadata["max_fid_ratio"].value == settings.checks.max_fid_ratio

    edit_summary(damaged.paths.images("alpha"), frechet_to_real=2 * settings.checks.max_fid_ratio * floor)
    far = checks.check_frechet(damaged, settings, "alpha")
    assert not far.passed and far.severity == dg.AssetCheckSeverity.WARN
    assert far.metadata["ratio"].value == pytest.approx(2 * settings.checks.max_fid_ratio)

    edit_summary(damaged.paths.images("beta"), frechet_to_real=None)
    unscored = checks.check_frechet(damaged, settings, "beta")
    assert unscored.passed and unscored.metadata["skipped"].value is True
    assert "skipped" in unscored.description


def test_attributors_above_chance(query_store, damaged):
    settings, space = query_store.settings, "rgb"
    result = checks.check_attributors(query_store.store, settings, space)
    assert result.passed, result.metadata
    methods = result.metadata["methods"].value
    assert set(methods) == {str(Method.artifacts(space, kind)) for kind in settings.artifacts.kinds}
    assert all(m["chance"] == pytest.approx(1 / 3) for m in methods.values())

    method = Method.artifacts(space, settings.artifacts.kinds[0])
    path = damaged.paths.metrics(method).resolve()
    metrics = json.loads(path.read_text())
    metrics["accuracy_mean"] = 1 / 3  # chance, for real, alpha and beta
    path.write_text(json.dumps(metrics))
    refresh_integrity(path)
    weak = checks.check_attributors(damaged, settings, space)
    assert not weak.passed
    assert weak.metadata["at_or_below_chance"].value == [str(method)]


def test_feature_table_rows_match_the_manifests(query_store, damaged):
    result = checks.check_feature_rows(query_store.store)
    assert result.passed, result.metadata
    assert result.metadata["rows"].value == result.metadata["manifest_rows"].value == 180 + 60 + 60

    table = pq.read_table(damaged.paths.samples_table)
    rewrite_table(damaged.paths.samples_table, table.slice(0, table.num_rows - 1))  # the last model row lost
    short = checks.check_feature_rows(damaged)
    assert not short.passed
    assert short.metadata["mismatched"].value == ["beta"]
    assert short.metadata["per_source"].value["beta"] == {"table": 59, "manifest": 60}


def test_a_check_that_cannot_read_the_store_fails_with_the_reason(damaged):
    remove_paths([damaged.paths.features])
    result = checks.check_feature_rows(damaged)
    assert not result.passed
    assert "feature table" in result.description


def test_the_blocking_checks_run_in_the_dataset_jobs(query_store, damaged):
    """The reference job of one space (everything reused from the store) runs its blocking checks after the
    assets they check."""
    from assets.resources import ManifptResource
    from pipelines.definitions import build_definitions

    home = damaged.root.parent
    defs = build_definitions(ManifptResource(home=str(home), profile="tiny", config_file=str(query_store.config),
                                             device="cpu"))
    assert Path(ManifptResource(home=str(home)).home_folder.store_root) == damaged.root  # the copy, at <home>/store
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("bench__reference").execute_in_process(partition_key="rgb", instance=instance)
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"real_artifacts", "reference_index"}
    assert all(e.passed for e in evaluations.values())
    assert evaluations["reference_index"].metadata["exact"].value is True


def test_every_dataset_has_its_checks(demo_defs):
    specs = [spec for checks_def in demo_defs.asset_checks for spec in checks_def.check_specs]
    by_dataset = {}
    for spec in specs:
        by_dataset.setdefault(spec.asset_key.path[0], set()).add((spec.asset_key.path[-1], spec.name, spec.blocking))
    assert set(by_dataset) == {"fmnist_clothing", "fmnist_footwear_bags"}
    assert by_dataset["fmnist_clothing"] == {
        ("real_artifacts", "no_self_neighbour", True), ("generated_artifacts", "no_self_neighbour", True),
        ("reference_index", "recall_at_1", True), ("generated_images", "frechet_to_real", False),
        ("attributor", "above_chance", False), ("feature_table", "rows_match_manifests", True)}
