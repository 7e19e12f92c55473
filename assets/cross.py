"""Cross-dataset generalization: every dataset's attributors on the other datasets' generative models."""

import dagster as dg

from assets._results import to_result
from assets.attribution import GROUP, registered_models
from assets.automation import AFTER_UPSTREAM
from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from assets.retries import step_asset
from manifpt_core.steps.cross import CROSS_VERSION, cross_dataset, generalization_table
from manifpt_core.store.layout import CROSS_DIR

KEY = dg.AssetKey([CROSS_DIR, "generalization"])


def build(specs: list[DatasetSpec]) -> list[dg.AssetsDefinition]:
    """The cross-dataset asset over every dataset; it runs after all their reports (so all their attributors)."""

    @step_asset(key=KEY, group_name=GROUP, code_version=CROSS_VERSION,
                deps=[ds.key("attribution_report") for ds in specs], automation_condition=AFTER_UPSTREAM, pool="gpu",
                kinds={"markdown"})
    def generalization(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """Cross-dataset generalization (the paper's Table 4): each dataset's attributors name the models behind
        the test split of the same architectures trained on every other dataset, matched by model name."""
        outcome = cross_dataset([manifpt.store(ds.name) for ds in specs], [manifpt.settings(ds.name) for ds in specs],
                                {ds.name: registered_models(context, ds) for ds in specs})
        return to_result(context, outcome, table=dg.MetadataValue.md(generalization_table(outcome.summary.rows)),
                         report=dg.MetadataValue.path(str(outcome.path / "report.md")))

    return [generalization]
