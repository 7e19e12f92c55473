"""The query set sensor records a query set's new data version with how many of its images it read."""

import os

import dagster as dg
import numpy as np

from assets.resources import ManifptResource
from pipelines.queries import check_query_sets


def test_the_sensor_reads_only_the_images_that_changed(tmp_path, png_writer, file_ager):
    resource = ManifptResource(home=str(tmp_path / "home"), profile="tiny")
    folder = tmp_path / "home" / "queries" / "mine"
    png_writer(folder, np.zeros((4, 1, 12, 12), np.uint8))
    file_ager(folder)
    with dg.instance_for_test() as instance:
        result = check_query_sets(instance, resource)
        (observation,) = result.asset_events
        assert {k: v.value for k, v in observation.metadata.items()} == {"files": 4, "files_read": 4,
                                                                          "files_from_cache": 0}
        instance.add_dynamic_partitions("query_sets", ["mine"])
        instance.report_runless_asset_event(observation)
        assert isinstance(check_query_sets(instance, resource), dg.SkipReason)  # unchanged
        png_writer(folder, np.full((1, 1, 12, 12), 9, np.uint8))  # rewrites 0000.png with other pixels
        os.utime(folder / "0000.png", (1e9, 1e9))
        (changed,) = check_query_sets(instance, resource).asset_events
        assert changed.metadata["files_read"].value == 1 and changed.tags != observation.tags
