"""Step 5 assets: attributors per space, the raw-image control, and the report."""

import dagster as dg

from assets._results import png_markdown, to_result
from manifpt_core.errors import StoreError
from manifpt_core.steps import RAW, train_attributors, write_report
from manifpt_core.steps.attribute import ATTRIBUTOR_VERSION
from manifpt_core.steps.report import REPORT_VERSION
from pipelines.partitions import DatasetSpec, by_space
from pipelines.resources import ManifptResource

GROUP = "attribution"


def registered_models(context: dg.AssetExecutionContext, ds: DatasetSpec) -> list[str]:
    """The generative models the instance knows for this dataset (its dynamic partitions)."""
    models = sorted(context.instance.get_dynamic_partitions(ds.models.name))
    if not models:
        raise StoreError(f"no generative models are registered for {ds.name!r}: run `manifpt run` "
                         "or let the model discovery sensor register them")
    return models


def _attribution_result(context, outcome) -> dg.MaterializeResult:
    s = outcome.summary
    table = dg.MetadataValue.md(
        "| seed | test accuracy | best epoch |\n|---|---|---|\n"
        + "\n".join(f"| {r['seed']} | {100 * r['test_accuracy']:.2f}% | {r['best_epoch']} |" for r in s["per_seed"])
    )
    return to_result(context, outcome, accuracy_table=table,
                     confusion_matrix=png_markdown(outcome.path / s["confusion_png"], "confusion matrix"))


def build(ds: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The attribution and report assets of one dataset."""

    @dg.asset(key=ds.key("attributor"), group_name=GROUP, code_version=ATTRIBUTOR_VERSION,
              partitions_def=ds.space_partitions,
              deps=[ds.key("real_artifacts"), dg.AssetDep(ds.key("generated_artifacts"), partition_mapping=by_space)],
              pool="gpu", kinds={"pytorch"})
    def attributor(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """A ResNet trained on one space's artifacts to name the source model (real is one more class)."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        outcome = train_attributors(store, settings, context.partition_key, registered_models(context, ds))
        return _attribution_result(context, outcome)

    @dg.asset(key=ds.key("raw_control"), group_name=GROUP, code_version=ATTRIBUTOR_VERSION,
              deps=[ds.key("real_images"), ds.key("generated_images")], pool="gpu", kinds={"pytorch"})
    def raw_control(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """The control: the same network and protocol trained on the raw images instead of artifacts."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return _attribution_result(context, train_attributors(store, settings, RAW, registered_models(context, ds)))

    @dg.asset(key=ds.key("attribution_report"), group_name=GROUP, code_version=REPORT_VERSION,
              deps=[attributor, raw_control, ds.key("generator"), ds.key("generated_images")], kinds={"markdown"})
    def attribution_report(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """The report: accuracy per space and for the raw control, confusion matrices, generator samples and FD."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        outcome = write_report(store, settings, registered_models(context, ds))
        rows = outcome.summary["main_table"]
        table = dg.MetadataValue.md(
            "| method | test accuracy | test samples |\n|---|---|---|\n"
            + "\n".join(f"| {r['method']} | {100 * r['accuracy_mean']:.2f}% | {r['n_test']} |" for r in rows)
        )
        return to_result(context, outcome, main_table=table, report=dg.MetadataValue.path(str(outcome.path / "report.md")))

    return [attributor, raw_control, attribution_report]
