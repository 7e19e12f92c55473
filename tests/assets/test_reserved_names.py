"""A dynamic partition named `real` (added by hand in the UI) fails its runs with the reason, and the real
image store is untouched."""

import dagster as dg

from assets import ingestion
from assets.partitions import DatasetSpec
from assets.resources import ManifptResource


def test_a_partition_named_real_is_refused_and_the_real_store_untouched(tmp_path, config_writer):
    resource = ManifptResource(home=str(tmp_path / "home"), profile="tiny", config_file=str(config_writer(tmp_path)),
                               device="cpu")
    ds = DatasetSpec.of(resource.settings("bench"))
    real_images, generator, generated_images = ingestion.build(ds)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"manifpt": resource}
    assert dg.materialize([real_images], instance=instance, resources=resources).success
    store = resource.store("bench")
    before = {p: p.stat().st_mtime_ns for p in store.paths.images("real").rglob("*")}
    record = store.real.record

    instance.add_dynamic_partitions(ds.models.name, ["real"])
    for asset in (generator, generated_images):
        result = dg.materialize([real_images, generator, generated_images], selection=[asset], partition_key="real",
                                instance=instance, resources=resources, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "reserved for the real images" in failure.event_specific_data.error.to_string()

    assert {p: p.stat().st_mtime_ns for p in store.paths.images("real").rglob("*")} == before
    assert store.real.record == record
    assert not store.paths.base.joinpath("generators", "real").exists()
