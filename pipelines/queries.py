"""The query set sensor: every folder under ``<home>/queries/`` becomes a partition of the query assets, and
each change of its images is recorded as a new data version of ``queries/query_set``.

The sensor only records partitions and observations; the automation requests the runs (so no run is ever
requested twice): a new or changed query set is attributed once, and nothing upstream of it is requested.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG, extract_data_version_from_entry

from assets.queries import QUERY_SETS, SET_KEY
from assets.resources import ManifptResource
from manifpt_core.errors import InputError
from manifpt_core.names import NAME_HELP, NAME_RULE
from manifpt_core.query.sets import observe_query_set, query_set_names


def check_query_sets(instance: dg.DagsterInstance, manifpt: ManifptResource) -> dg.SensorResult | dg.SkipReason:
    """Partitions to add and delete, and observations of query sets whose images changed."""
    home = manifpt.home_folder
    known = set(instance.get_dynamic_partitions(QUERY_SETS.name))
    folders, skipped = [], []
    for name in query_set_names(home):
        (folders if NAME_RULE.fullmatch(name) else skipped).append(name)
    added = [n for n in folders if n not in known]
    removed = sorted(known - set(folders))
    events, notes = [], [f"query folder {n!r} skipped: its name must be {NAME_HELP}" for n in skipped]
    for name in folders:
        try:
            observed = observe_query_set(home, name)
        except InputError as err:
            notes.append(str(err))
            continue
        if name in known:
            record = instance.get_latest_data_version_record(SET_KEY, partition_key=name)
            stored = extract_data_version_from_entry(record.event_log_entry) if record is not None else None
            if stored is not None and stored.value == observed.content_hash:
                continue
        events.append(dg.AssetObservation(SET_KEY, partition=name, tags={DATA_VERSION_TAG: observed.content_hash},
                                          description="images changed" if name in known else "new query set",
                                          metadata=observed.metadata()))
    requests = []
    if added:
        requests.append(QUERY_SETS.build_add_request(added))
    if removed:
        requests.append(QUERY_SETS.build_delete_request(removed))
    if not (requests or events):
        return dg.SkipReason("; ".join(notes) or "no query set added, removed or changed")
    return dg.SensorResult(dynamic_partitions_requests=requests, asset_events=events)


def build_query_sensor() -> dg.SensorDefinition:
    @dg.sensor(name="query_set_sensor", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
    def query_set_sensor(context: dg.SensorEvaluationContext, manifpt: ManifptResource):
        """Adds a partition for each folder under <home>/queries/ and records a new data version of its images
        when they change; the automation then attributes the query set."""
        return check_query_sets(context.instance, manifpt)

    return query_set_sensor
