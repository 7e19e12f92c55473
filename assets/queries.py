"""Query sets as Dagster assets: each folder under ``<home>/queries/`` is a partition of ``query_attribution``.

``query_set`` is the observed folder (its data version is the content hash of its images);
``query_attribution`` attributes its images in every dataset and writes ``attribution.parquet`` beside them.
The automation recomputes a query set when its images or a dataset's attributors change; the query assets
depend on the attributors but never cause them to run.
"""

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from assets._results import png_markdown, to_result
from assets.automation import ON_CHANGE
from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from assets.retries import step_asset
from manifpt_core.errors import InputError
from manifpt_core.query.sets import GRID_FILE, QUERY_VERSION, attribute_query_set, observe_query_set

GROUP = "queries"
QUERY_SETS = dg.DynamicPartitionsDefinition(name="query_sets")
SET_KEY = dg.AssetKey(["queries", "query_set"])
KEY = dg.AssetKey(["queries", "query_attribution"])


def build(specs: list[DatasetSpec]) -> list:
    """The observed query sets and their attribution in every dataset."""

    # Observed by the query set sensor (every 30 s), not by the automation: no run is needed to notice a change.
    @dg.observable_source_asset(key=SET_KEY, group_name=GROUP, partitions_def=QUERY_SETS,
                                description="A folder of images under <home>/queries/<name>/, by content hash.")
    def query_set(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.DataVersionsByPartition:
        home = manifpt.home_folder
        wanted = [context.partition_key] if context.has_partition_key else \
            context.instance.get_dynamic_partitions(QUERY_SETS.name)
        for name in wanted:
            try:
                observed = observe_query_set(home, name)
            except InputError as err:  # gone or empty: nothing to observe; the query sensor reports it
                context.log.warning(str(err))
                continue
            # logged here rather than returned, so that the observation carries the files read (as model_source)
            context.log_event(dg.AssetObservation(SET_KEY, partition=name, metadata=observed.metadata(),
                                                  tags={DATA_VERSION_TAG: observed.content_hash}))
        return dg.DataVersionsByPartition({})

    deps = [dg.AssetDep(SET_KEY)]
    for ds in specs:
        deps += [dg.AssetDep(ds.key("attributor"), partition_mapping=dg.AllPartitionMapping()),
                 dg.AssetDep(ds.key("raw_control"), partition_mapping=dg.AllPartitionMapping())]

    @step_asset(key=KEY, group_name=GROUP, code_version=QUERY_VERSION, partitions_def=QUERY_SETS, deps=deps,
                automation_condition=ON_CHANGE, pool="gpu", kinds={"pytorch", "parquet"})
    def query_attribution(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """Which model made each image of a query set: every attributor (seeds averaged) and the raw-image control
        of every dataset, with the open-set verdict and the nearest real reference per space, in
        queries/<name>/attribution.parquet (one row per image, dataset and method)."""
        name = context.partition_key
        outcome = attribute_query_set(manifpt.home_folder, list(manifpt.datasets()), name, manifpt.device or None)
        s = outcome.summary
        lines = ["| dataset/method | unknown | predicted |", "|---|---|---|"]
        lines += [f"| {key} | {100 * s.unknown_share[key]:.0f}% | "
                  f"{', '.join(f'{src} {n}' for src, n in sorted(counts.items()))} |"
                  for key, counts in s.predicted.items()]
        extra = {"summary_table": dg.MetadataValue.md("\n".join(lines)),
                 "result": dg.MetadataValue.path(s.result), "dagster/row_count": s.n_images}
        grid = outcome.path / GRID_FILE
        if grid.is_file():
            extra["predictions"] = png_markdown(grid, f"query set {name}")
        return to_result(context, outcome, **extra)

    return [query_set, query_attribution]
