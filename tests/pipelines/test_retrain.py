"""The full-retrain schedules: off by default, one run per partition of each retrained job, tagged full."""

import datetime

import dagster as dg

from assets.attribution import RETRAIN_TAG
from pipelines.retrain import RETRAINED

DATASETS = ("fmnist_clothing", "fmnist_footwear_bags")
WHEN = datetime.datetime(2026, 12, 6, 3, 0, tzinfo=datetime.UTC)


def test_every_dataset_has_its_full_retrain_schedules_off_by_default(demo_defs):
    schedules = {s.name: s for s in demo_defs.schedules}
    for dataset in DATASETS:
        for job, name, partitioning in RETRAINED:
            schedule = schedules[f"{dataset}__{name}"]
            assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
            assert schedule.job_name == f"{dataset}__{job}"
            assert schedule.cron_schedule == "0 3 * * 0"
            with dg.instance_for_test() as instance:
                context = dg.build_schedule_context(instance=instance, scheduled_execution_time=WHEN,
                                                    repository_def=demo_defs.get_repository_def())
                requests = schedule.evaluate_tick(context).run_requests
            keys = {"space": ["rgb", "freq", "sl", "ssl"], "none": [None],
                    "baseline": ["mccloskey", "nataraj", "durall-lr", "durall-svm", "dzanic", "raw-blurjpeg"]}
            assert sorted(map(str, (r.partition_key for r in requests))) == sorted(map(str, keys[partitioning]))
            assert all(r.tags[RETRAIN_TAG] == "full" for r in requests)
            assert len({r.run_key for r in requests}) == len(requests)
