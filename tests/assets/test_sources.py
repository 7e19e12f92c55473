"""The observable sources (the real source, each model's, each query set) record, with each data version, how many
files were read and how many came from the store's file hash cache."""

import dagster as dg
import numpy as np
from dagster._core.definitions.data_version import DATA_VERSION_TAG, extract_data_version_from_entry

from assets import queries, sources
from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from manifpt_core.query.sets import query_set_hash
from manifpt_core.steps.generators import model_source_hash
from manifpt_core.steps.ingest import real_source_hash
from manifpt_core.store import Home


def observations(defs, instance, job, partition=None) -> list[dg.AssetObservation]:
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition)
    return [e.asset_observation_data.asset_observation for e in result.get_asset_observation_events()]


def test_observations_carry_the_files_read_and_the_content_hash(tmp_path, config_writer, file_ager):
    config = config_writer(tmp_path)
    file_ager(tmp_path / "bench")
    resource = ManifptResource(home=str(tmp_path / "home"), profile="tiny", config_file=str(config), device="cpu")
    settings = resource.settings("bench")
    ds = DatasetSpec.of(settings)
    real, model, _ = sources.build(ds)
    defs = dg.Definitions(assets=[real, model], resources={"manifpt": resource},
                          jobs=[dg.define_asset_job("real", selection=[real.key]),
                                dg.define_asset_job("model", selection=[model.key])])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ds.models.name, ["alpha", "beta"])
        for read in (60, 0):
            (seen,) = observations(defs, instance, "model", "alpha")
            assert seen.partition == "alpha" and seen.tags[DATA_VERSION_TAG] == model_source_hash(settings, "alpha")
            assert {k: v.value for k, v in seen.metadata.items()} == {"files": 60, "files_read": read,
                                                                       "files_from_cache": 60 - read}
        record = instance.get_latest_data_version_record(ds.key("model_source"), partition_key="alpha")
        assert extract_data_version_from_entry(record.event_log_entry).value == model_source_hash(settings, "alpha")
        for read in (180, 0):
            (seen,) = observations(defs, instance, "real")
            assert seen.tags[DATA_VERSION_TAG] == real_source_hash(settings)
            assert {k: v.value for k, v in seen.metadata.items()} == {"files": 180, "files_read": read,
                                                                       "files_from_cache": 180 - read}


def test_a_query_set_observation_carries_the_files_read(tmp_path, png_writer, file_ager):
    resource = ManifptResource(home=str(tmp_path / "home"), profile="tiny")
    png_writer(tmp_path / "home" / "queries" / "mine", np.zeros((3, 1, 12, 12), np.uint8))
    file_ager(tmp_path / "home" / "queries")
    query_set = next(a for a in queries.build([]) if a.key == queries.SET_KEY)
    defs = dg.Definitions(assets=[query_set], resources={"manifpt": resource},
                          jobs=[dg.define_asset_job("observe", selection=[query_set.key])])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(queries.QUERY_SETS.name, ["mine"])
        for read in (3, 0):
            (seen,) = observations(defs, instance, "observe", "mine")
            assert seen.tags[DATA_VERSION_TAG] == query_set_hash(Home(tmp_path / "home"), "mine")
            assert {k: v.value for k, v in seen.metadata.items()} == {"files": 3, "files_read": read,
                                                                       "files_from_cache": 3 - read}
