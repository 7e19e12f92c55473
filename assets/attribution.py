"""Step 5 assets: attributors per space, the raw-image control, and the report."""

import dagster as dg

from assets._results import png_markdown, to_result
from assets.artifacts import generated_artifacts, real_artifacts
from assets.ingestion import generated_images, generator, real_images
from manifpt_core.errors import StoreError
from manifpt_core.steps import RAW, train_attributors, write_report
from manifpt_core.steps.attribute import ATTRIBUTOR_VERSION
from manifpt_core.steps.report import REPORT_VERSION
from pipelines.partitions import by_space, embedding_spaces, generative_models
from pipelines.resources import ManifptResource

GROUP = "attribution"


def registered_models(context: dg.AssetExecutionContext) -> list[str]:
    """The generative models the instance knows (the dynamic partitions)."""
    models = sorted(context.instance.get_dynamic_partitions(generative_models.name))
    if not models:
        raise StoreError("no generative models are registered: run `manifpt run` or the model discovery sensor first")
    return models


def _attribution_result(context, outcome) -> dg.MaterializeResult:
    s = outcome.summary
    table = dg.MetadataValue.md(
        "| seed | test accuracy | best epoch |\n|---|---|---|\n"
        + "\n".join(f"| {r['seed']} | {100 * r['test_accuracy']:.2f}% | {r['best_epoch']} |" for r in s["per_seed"])
    )
    return to_result(context, outcome, accuracy_table=table,
                     confusion_matrix=png_markdown(outcome.path / s["confusion_png"], "confusion matrix"))


@dg.asset(
    group_name=GROUP,
    code_version=ATTRIBUTOR_VERSION,
    partitions_def=embedding_spaces,
    deps=[real_artifacts, dg.AssetDep(generated_artifacts, partition_mapping=by_space)],
    pool="gpu",
    kinds={"pytorch"},
)
def attributor(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
    """A ResNet trained on one space's artifacts to name the source model (real is one more class)."""
    outcome = train_attributors(manifpt.store(), manifpt.settings(), context.partition_key, registered_models(context))
    return _attribution_result(context, outcome)


@dg.asset(group_name=GROUP, code_version=ATTRIBUTOR_VERSION, deps=[real_images, generated_images], pool="gpu",
          kinds={"pytorch"})
def raw_control(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
    """The control: the same network and protocol trained on the raw images instead of artifacts."""
    outcome = train_attributors(manifpt.store(), manifpt.settings(), RAW, registered_models(context))
    return _attribution_result(context, outcome)


@dg.asset(group_name=GROUP, code_version=REPORT_VERSION, deps=[attributor, raw_control, generator],
          kinds={"markdown"})
def attribution_report(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
    """The report: test accuracy per space and for the raw control, confusion matrices, generator samples."""
    outcome = write_report(manifpt.store(), manifpt.settings(), registered_models(context))
    rows = outcome.summary["main_table"]
    table = dg.MetadataValue.md(
        "| method | test accuracy | test samples |\n|---|---|---|\n"
        + "\n".join(f"| {r['method']} | {100 * r['accuracy_mean']:.2f}% | {r['n_test']} |" for r in rows)
    )
    return to_result(context, outcome, main_table=table,
                     report=dg.MetadataValue.path(str(outcome.path / "report.md")))
