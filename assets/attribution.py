"""Step 5 assets: attributors per space, the raw-image control, the baselines, and the report."""

import dagster as dg

from assets._results import png_markdown, to_result
from assets.automation import AFTER_UPSTREAM, ON_CHANGE
from assets.partitions import DatasetSpec, by_space
from assets.resources import ManifptResource
from assets.retries import step_asset
from manifpt_core.errors import StoreError
from manifpt_core.names import Method
from manifpt_core.steps import CONTROL, train_attributors, write_report
from manifpt_core.steps.augment import SharedQueries
from manifpt_core.steps.attribute import (
    ATTRIBUTOR_VERSION,
    combine_outcomes,
    seed_table_markdown,
)
from manifpt_core.steps.baselines import BASELINE_VERSION, run_baseline
from manifpt_core.steps.enroll import training_text
from manifpt_core.steps.features import FEATURES_VERSION, materialize_feature_table
from manifpt_core.steps.report import (
    REPORT_VERSION,
    main_table_markdown,
    nmi_lines,
    open_set_lines,
)
from manifpt_core.steps.robustness import ROBUSTNESS_VERSION, evaluate_robustness, robustness_markdown
from manifpt_core.store import Outcome
from manifpt_core.store.records import AttributorMetrics

GROUP = "attribution"
RETRAIN_TAG = "manifpt/retrain"  # a run tagged "full" retrains the attributors from scratch (the full-retrain schedules)


def retrain_of(context: dg.AssetExecutionContext) -> str | None:
    """The run's ``manifpt/retrain`` tag (``enroll`` or ``full``), else None: the settings' attribution.retrain."""
    return context.run.tags.get(RETRAIN_TAG)


def registered_models(context: dg.AssetExecutionContext, ds: DatasetSpec) -> list[str]:
    """The generative models the instance knows for this dataset (its dynamic partitions)."""
    models = sorted(context.instance.get_dynamic_partitions(ds.models.name))
    if not models:
        raise StoreError(f"no generative models are registered for {ds.name!r}: run `manifpt run` "
                         "or let the model discovery sensor register them")
    return models


def _attribution_result(context, outcomes: list[Outcome[AttributorMetrics]]) -> dg.MaterializeResult:
    """One materialization for the attributors of one space (one per artifact kind), the control or a baseline."""
    figures = {f"{name}_{o.summary.method}": png_markdown(o.path / getattr(o.summary, f"{name}_png"),
                                                          name.replace("_", " "))
               for o in outcomes for name in ("confusion", "per_class")}
    table = dg.MetadataValue.md(seed_table_markdown([o.summary for o in outcomes]))
    training = {o.summary.method: training_text(o.summary.training) for o in outcomes if o.summary.training is not None}
    if training:
        figures["training"] = dg.MetadataValue.md("\n".join(f"- {m}: {line}" for m, line in training.items()))
    outcome = outcomes[0] if len(outcomes) == 1 else combine_outcomes(outcomes)
    return to_result(context, outcome, accuracy_table=table, **figures)


def build(ds: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The attribution and report assets of one dataset."""

    @step_asset(key=ds.key("attributor"), group_name=GROUP, code_version=ATTRIBUTOR_VERSION,
                partitions_def=ds.space_partitions,
                deps=[ds.key("real_artifacts"), dg.AssetDep(ds.key("generated_artifacts"), partition_mapping=by_space),
                      ds.key("model_set")],
                automation_condition=ON_CHANGE, pool="gpu", kinds={"pytorch"})
    def attributor(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """Attributors trained on one space's artifacts, one per artifact kind, to name the source model (real is
        one more class): a ResNet for image-shaped artifacts (rgb, freq), an MLP for vectors (sl, ssl)."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        models = registered_models(context, ds)
        space, shared = context.partition_key, SharedQueries()
        return _attribution_result(context, [train_attributors(store, settings, Method.artifacts(space, kind), models,
                                                               retrain_of(context), shared)
                                             for kind in settings.artifacts.kinds])

    @step_asset(key=ds.key("raw_control"), group_name=GROUP, code_version=ATTRIBUTOR_VERSION,
                deps=[ds.key("real_images"), ds.key("generated_images"), ds.key("model_set")],
                automation_condition=ON_CHANGE, pool="gpu", kinds={"pytorch"})
    def raw_control(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """The control: the same network and protocol trained on the raw images instead of artifacts."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return _attribution_result(context, [train_attributors(store, settings, CONTROL, registered_models(context, ds),
                                                               retrain_of(context))])

    built = [attributor, raw_control]
    if ds.baselines:
        @step_asset(key=ds.key("baseline"), group_name=GROUP, code_version=BASELINE_VERSION,
                    partitions_def=ds.baseline_partitions,
                    deps=[ds.key("real_images"), ds.key("model_set"),
                          dg.AssetDep(ds.key("generated_images"), partition_mapping=dg.AllPartitionMapping())],
                    automation_condition=ON_CHANGE, pool="gpu", kinds={"scikitlearn", "pytorch"})
        def baseline(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
            """A baseline of the paper's Table 2 on the raw images, with the attributors' splits and seeds:
            McCloskey (saturation histograms, linear SVM), Nataraj (co-occurrence matrices, CNN), Durall
            (azimuthal spectrum, logistic regression or linear SVM), Dzanic (spectral decay, k-NN), or the
            raw-image CNN with blur + JPEG augmentation."""
            store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
            return _attribution_result(context, [run_baseline(store, settings, context.partition_key,
                                                              registered_models(context, ds), retrain_of(context))])

        built.append(baseline)

    @step_asset(key=ds.key("robustness"), group_name=GROUP, code_version=ROBUSTNESS_VERSION,
                deps=[*built, ds.key("embedding_space"), ds.key("reference_index")],
                automation_condition=AFTER_UPSTREAM, pool="gpu", kinds={"pytorch"})
    def robustness(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """Every method's test accuracy after post-processing of its test images (JPEG 90/75/50, resizing by 0.5,
        blur, noise), applied before embedding so artifacts are recomputed against the stored index as a query's
        are; mean ± std over seeds and the drop from clean; with robustness.compare_augment, each attributor's
        twin trained with the other attributor.augment setting."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        outcome = evaluate_robustness(store, settings, registered_models(context, ds), retrain_of(context))
        return to_result(context, outcome,
                         robustness_table=dg.MetadataValue.md("\n".join(robustness_markdown(outcome.summary))),
                         robustness_figure=png_markdown(outcome.path / outcome.summary.figure, "robustness"))

    @step_asset(key=ds.key("attribution_report"), group_name=GROUP, code_version=REPORT_VERSION,
                deps=[*built, robustness], automation_condition=AFTER_UPSTREAM, kinds={"markdown"})
    def attribution_report(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """The report: accuracy ± std and FD ratio per space, artifact kind, the raw control and each baseline; NMI with the zoo's
        design factors; open-set AUROC; t-SNE maps, confusion matrices, generator samples and Fréchet distances."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        outcome = write_report(store, settings, registered_models(context, ds))
        report = store.report()
        shown = ("pixels", str(CONTROL), str(settings.methods[0]))
        figures = {f"tsne_{name}": png_markdown(outcome.path / path, f"t-SNE {name}")
                   for name, path in report.tsne.items() if name in shown}
        return to_result(context, outcome, main_table=dg.MetadataValue.md(main_table_markdown(report)),
                         nmi_table=dg.MetadataValue.md("\n".join(nmi_lines(report.nmi))),
                         open_set_table=dg.MetadataValue.md("\n".join(open_set_lines(report.main_table)) or "n/a"),
                         report=dg.MetadataValue.path(str(outcome.path / "report.md")), **figures)

    @step_asset(key=ds.key("feature_table"), group_name=GROUP, code_version=FEATURES_VERSION,
                deps=[ds.key("real_artifacts"), ds.key("generated_artifacts"), ds.key("attributor"),
                      ds.key("raw_control"), ds.key("model_set")],
                automation_condition=AFTER_UPSTREAM, pool="gpu", kinds={"parquet"})
    def feature_table(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """The feature table, what SQL and dataframes read: features/samples.parquet, one row per stored sample
        (manifest columns, split, source; per space its nearest real reference and distance; per method its
        test-time prediction and probability), and features/predictions.parquet, one row per test sample,
        method and seed."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        outcome = materialize_feature_table(store, settings, registered_models(context, ds))
        rows = "\n".join(f"| {m} | {100 * a:.2f}% |" for m, a in outcome.summary.accuracy.items())
        return to_result(context, outcome, **{"dagster/row_count": outcome.summary.n_samples},
                         samples=dg.MetadataValue.path(str(store.paths.samples_table)),
                         accuracy_table=dg.MetadataValue.md("| method | test accuracy (mean over seeds) |\n"
                                                            "|---|---|\n" + rows))

    return [*built, robustness, attribution_report, feature_table]
