"""Step 5 assets: attributors per space, the raw-image control, the baselines, and the report."""

import json

import dagster as dg

from assets._results import png_markdown, to_result
from manifpt_core.config import method_name
from manifpt_core.errors import StoreError
from manifpt_core.steps import RAW, Outcome, train_attributors, write_report
from manifpt_core.steps.attribute import ATTRIBUTOR_VERSION
from manifpt_core.steps.baselines import BASELINE_VERSION, run_baseline
from manifpt_core.steps.report import REPORT_VERSION, nmi_lines, open_set_lines
from manifpt_core.store import combine_hashes
from pipelines.automation import AFTER_UPSTREAM, ON_CHANGE
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


def _pct(mean: float, std: float | None) -> str:
    return f"{100 * mean:.2f}%" + (f" ± {100 * std:.2f}" if std is not None else "")


def _accuracy_table(outcomes: list[Outcome]) -> dg.MetadataValue:
    rows = [f"| {o.summary['method']} | {r['seed']} | {100 * r['test_accuracy']:.2f}% | {r['fdr']:.2f} | "
            f"{r.get('best_epoch', '-')} |" for o in outcomes for r in o.summary["per_seed"]]
    return dg.MetadataValue.md("| method | seed | test accuracy | FDR | best epoch |\n|---|---|---|---|---|\n"
                               + "\n".join(rows))


def _attribution_result(context, outcomes: list[Outcome]) -> dg.MaterializeResult:
    """One materialization for the attributors of one space (one per artifact kind) or the control."""
    figures = {f"{name}_{o.summary['method']}": png_markdown(o.path / o.summary[f"{name}_png"], name.replace("_", " "))
               for o in outcomes for name in ("confusion", "per_class")}
    if len(outcomes) == 1:
        return to_result(context, outcomes[0], accuracy_table=_accuracy_table(outcomes), **figures)
    combined = Outcome(
        step="attributor", path=outcomes[0].path.parent,
        fingerprint=combine_hashes({o.summary["method"]: o.fingerprint for o in outcomes}),
        content_hash=combine_hashes({o.summary["method"]: o.content_hash for o in outcomes}),
        reused=all(o.reused for o in outcomes), seconds=sum(o.seconds for o in outcomes),
        summary={o.summary["method"]: {k: o.summary[k] for k in ("accuracy_mean", "accuracy_std", "fdr_mean", "n_test",
                                                                 "network", "open_set")}
                 for o in outcomes})
    return to_result(context, combined, accuracy_table=_accuracy_table(outcomes), **figures)


def build(ds: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The attribution and report assets of one dataset."""

    @dg.asset(key=ds.key("attributor"), group_name=GROUP, code_version=ATTRIBUTOR_VERSION,
              partitions_def=ds.space_partitions,
              deps=[ds.key("real_artifacts"), dg.AssetDep(ds.key("generated_artifacts"), partition_mapping=by_space),
                    ds.key("model_set")],
              automation_condition=ON_CHANGE, pool="gpu", kinds={"pytorch"})
    def attributor(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """Attributors trained on one space's artifacts, one per artifact kind, to name the source model (real is
        one more class): a ResNet for image-shaped artifacts (rgb, freq), an MLP for vectors (sl, ssl)."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        models = registered_models(context, ds)
        space = context.partition_key
        return _attribution_result(context, [train_attributors(store, settings, method_name(space, kind), models)
                                             for kind in settings.artifacts.kinds])

    @dg.asset(key=ds.key("raw_control"), group_name=GROUP, code_version=ATTRIBUTOR_VERSION,
              deps=[ds.key("real_images"), ds.key("generated_images"), ds.key("model_set")],
              automation_condition=ON_CHANGE, pool="gpu", kinds={"pytorch"})
    def raw_control(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """The control: the same network and protocol trained on the raw images instead of artifacts."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        return _attribution_result(context, [train_attributors(store, settings, RAW, registered_models(context, ds))])

    built = [attributor, raw_control]
    if ds.baselines:
        @dg.asset(key=ds.key("baseline"), group_name=GROUP, code_version=BASELINE_VERSION,
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
                                                              registered_models(context, ds))])

        built.append(baseline)

    @dg.asset(key=ds.key("attribution_report"), group_name=GROUP, code_version=REPORT_VERSION,
              deps=built, automation_condition=AFTER_UPSTREAM, kinds={"markdown"})
    def attribution_report(context: dg.AssetExecutionContext, manifpt: ManifptResource) -> dg.MaterializeResult:
        """The report: accuracy ± std and FD ratio per space, artifact kind, the raw control and each baseline; NMI with the zoo's
        design factors; open-set AUROC; t-SNE maps, confusion matrices, generator samples and Fréchet distances."""
        store, settings = manifpt.store(ds.name), manifpt.settings(ds.name)
        outcome = write_report(store, settings, registered_models(context, ds))
        report = json.loads((outcome.path / "report.json").read_text())
        table = dg.MetadataValue.md(
            "| method | network | test accuracy | FDR | test samples |\n|---|---|---|---|---|\n"
            + "\n".join(f"| {r['method']} | {r['network']} | {_pct(r['accuracy_mean'], r['accuracy_std'])} | "
                        f"{r['fdr_mean']:.2f} | {r['n_test']} |" for r in report["main_table"]))
        figures = {f"tsne_{name}": png_markdown(outcome.path / path, f"t-SNE {name}")
                   for name, path in report["tsne"].items() if name in ("pixels", "raw", settings.methods[0])}
        return to_result(context, outcome, main_table=table,
                         nmi_table=dg.MetadataValue.md("\n".join(nmi_lines(report["nmi"]))),
                         open_set_table=dg.MetadataValue.md("\n".join(open_set_lines(report["main_table"])) or "n/a"),
                         report=dg.MetadataValue.path(str(outcome.path / "report.md")), **figures)

    return [*built, attribution_report]
