"""The deployment's sensors and automation, driven in one process: what the Dagster daemon does, tick by tick.

``AutomationDriver`` evaluates the discovery sensor and the automation
conditions against an instance and executes what they request, in process,
until nothing more is requested. Tests read the event log it leaves; the
add-a-model benchmark times it. A deployment runs the same definitions under
``dagster dev`` (``manifpt ui``) or a daemon instead.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import dagster as dg

from assets.resources import ManifptResource
from pipelines.definitions import build_definitions
from pipelines.jobs import OBSERVATIONS

logger = logging.getLogger(__name__)

PAGE = 10000  # event records per query, Dagster's maximum
# Source asset -> the observation job (per dataset) that observes it.
OBSERVERS = {source: job for job, sources, _, _ in OBSERVATIONS for source in sources}


@dataclass
class Step:
    """One executed request: what ran, for which partition, and how long the run took."""

    keys: list[str]
    partition: str | None
    seconds: float


@dataclass
class AutomationDriver:
    resource: ManifptResource
    instance: dg.DagsterInstance
    cursor: object = None
    last_tick: float = 0.0  # when tick() last evaluated (an hourly cron may tick between two)
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.defs = build_definitions(self.resource)
        self.graph = self.defs.resolve_asset_graph()

    def sensor(self, name: str = "model_discovery_sensor") -> dg.SensorResult:
        """One tick of a sensor (model discovery by default, or ``query_set_sensor``), applied as the daemon
        applies it (partitions, observations, runs)."""
        context = dg.build_sensor_context(instance=self.instance, resources={"manifpt": self.resource})
        result = self.defs.resolve_sensor_def(name)(context)
        if isinstance(result, dg.SkipReason):
            return dg.SensorResult(skip_reason=result)
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        for event in result.asset_events or []:
            self.instance.report_runless_asset_event(event)
        for run in result.run_requests or []:
            self.execute_job(run.job_name, run.partition_key)
        return result

    def execute_job(self, name: str, partition_key=None, tags: dict[str, str] | None = None
                    ) -> dg.ExecuteInProcessResult:
        start = time.perf_counter()
        result = self.defs.resolve_job_def(name).execute_in_process(instance=self.instance, partition_key=partition_key,
                                                                    tags=tags)
        self.steps.append(Step([name], partition_key, time.perf_counter() - start))
        return result

    def tick(self) -> dict[dg.AssetKey, set]:
        """One evaluation of every automation condition: the asset partitions it requests."""
        self.last_tick = time.time()
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return {r.key: set(result.get_requested_partitions(r.key)) for r in result.results
                if result.get_num_requested(r.key)}

    def execute(self, requested: dict[dg.AssetKey, set]) -> None:
        """Run what a tick requested: observations through their jobs, materializations one run per
        partitions definition and key (as the automation sensor groups them)."""
        groups: dict[tuple, list[dg.AssetKey]] = {}
        for key, partitions in requested.items():
            for partition in partitions:
                if key.path[-1] in OBSERVERS:
                    self.execute_job(f"{key.path[0]}__{OBSERVERS[key.path[-1]]}", partition)
                else:
                    groups.setdefault((id(self.graph.get(key).partitions_def), partition), []).append(key)
        for (_, partition), keys in groups.items():
            start = time.perf_counter()
            dg.materialize(self.defs.assets, selection=keys, partition_key=partition, instance=self.instance,
                           resources=self.defs.resources)
            self.steps.append(Step([k.to_user_string() for k in keys], partition and str(partition),
                                   time.perf_counter() - start))
            logger.info("materialized %s [%s] in %.1f s", [k.to_user_string() for k in keys], partition,
                        self.steps[-1].seconds)

    def settle(self, max_ticks: int = 60) -> int:
        """Tick and execute until two ticks in a row request nothing; returns the number of ticks."""
        quiet = 0
        for n in range(1, max_ticks + 1):
            requested = self.tick()
            quiet = 0 if requested else quiet + 1
            if quiet == 2:
                return n
            self.execute(requested)
        raise RuntimeError(f"the automation still requested runs after {max_ticks} ticks")

    def materializations(self) -> Counter:
        """(asset, partition) -> how many materializations the event log holds."""
        counts = Counter()
        for key in self.graph.materializable_asset_keys:
            cursor = None
            while True:
                page = self.instance.fetch_materializations(key, limit=PAGE, cursor=cursor)
                for record in page.records:
                    counts[(key.to_user_string(), record.partition_key)] += 1
                if not page.has_more:
                    break
                cursor = page.cursor
        return counts
