"""The query assets in a temp home: a query set materializes (and is reused), an empty one is a clear error."""

import shutil

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.queries import KEY, QUERY_SETS
from assets.resources import ManifptResource
from pipelines.definitions import build_definitions


@pytest.fixture
def home(query_store, tmp_path):
    """A copy of the materialized home, with a query set of three images and an empty one."""
    copy = tmp_path / "home"
    shutil.copytree(query_store.home.path, copy, symlinks=True)
    suspects = copy / "queries" / "suspects"
    suspects.mkdir(parents=True)
    for image in sorted(query_store.outsider.iterdir())[:3]:
        shutil.copy(image, suspects / image.name)
    (copy / "queries" / "nothing").mkdir()
    return copy


def materialize(resource, instance, partition):
    defs = build_definitions(resource)
    return dg.materialize([a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and KEY in a.keys],
                          partition_key=partition, instance=instance, resources={"manifpt": resource},
                          raise_on_error=False)


def test_a_query_set_materializes_and_is_then_reused(query_store, home):
    resource = ManifptResource(home=str(home), profile="tiny", config_file=str(query_store.config), device="cpu")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(QUERY_SETS.name, ["suspects", "nothing"])
        result = materialize(resource, instance, "suspects")
        assert result.success
        (event,) = result.get_asset_materialization_events()
        metadata = event.materialization.metadata
        assert metadata["reused"].value is False and metadata["dagster/row_count"].value == 3
        assert "bench/rgb" in metadata["summary_table"].value and "data:image/png" in metadata["predictions"].value
        table = pq.read_table(home / "queries" / "suspects" / "attribution.parquet")
        assert table.num_rows == 3 * 9 and table.column("error").null_count == table.num_rows
        again = materialize(resource, instance, "suspects").get_asset_materialization_events()[0]
        assert again.materialization.metadata["reused"].value is True
        assert again.materialization.tags["dagster/data_version"] == event.materialization.tags["dagster/data_version"]


def test_a_query_set_without_images_is_a_clear_error(query_store, home):
    resource = ManifptResource(home=str(home), profile="tiny", config_file=str(query_store.config), device="cpu")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(QUERY_SETS.name, ["nothing"])
        result = materialize(resource, instance, "nothing")
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "holds no image" in str(failure.step_failure_data.error)
        assert not (home / "queries" / "nothing" / "attribution.parquet").exists()
