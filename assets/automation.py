"""When the automation requests an asset: only when something it reads changed.

Dagster's ``eager()`` fires on every upstream materialization. Here an asset is
requested when it is missing, when a dependency's *data version* changed (a
re-materialization that reused the store keeps its data version), or when its
own code version changed; a change is handled once (``since_last_handled``).
Assets that gather every model (the report, the cross-dataset table) also wait
until no dependency is itself waiting on missing or requested inputs, so one new
model refreshes them once, after its attributors. The sensors that evaluate
these conditions are in ``pipelines/automation.py``.
"""

import dagster as dg

AC = dg.AutomationCondition

OBSERVE_CRON = "0 * * * *"  # hourly, the automation re-observes the sources (new models are observed at once)

_TRIGGER = (
    (AC.missing() & ~AC.execution_failed())  # a failed run is not retried in a loop: fix the cause, then launch
    | AC.any_deps_match(AC.data_version_changed())
    | AC.code_version_changed()
)

ON_CHANGE = (
    _TRIGGER.since_last_handled()
    & ~AC.any_deps_missing()
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
    & AC.any_deps_match(~AC.missing())  # a partitioned dependency with no partitions yet is not "ready"
).with_label("on_change")

AFTER_UPSTREAM = (
    ON_CHANGE & ~AC.any_deps_match(AC.any_deps_missing() | AC.will_be_requested())
).with_label("on_change_after_upstream")

OBSERVE = (AC.cron_tick_passed(OBSERVE_CRON) & ~AC.in_progress()).with_label(f"observe ({OBSERVE_CRON})")
