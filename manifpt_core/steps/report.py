"""Step 5b, the report: which generative model made an image, and how well can we tell?

``reports/report.md`` + ``report.json`` + ``figures/*.png``: test accuracy of
the attributor for each artifact space and kind and of the raw-image control,
what made each space and how its index searches, confusion matrices, and each
generator's sample grid.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from manifpt_core.config import Settings
from manifpt_core.formatting import format_mean_std
from manifpt_core.names import Method
from manifpt_core.steps.analysis import factor_names, nmi_table, tsne_maps
from manifpt_core.steps.attribute import CONTROL
from manifpt_core.steps.enroll import training_text
from manifpt_core.steps.labels import method_label
from manifpt_core.steps.parsing import model_parsing_table, parsing_markdown
from manifpt_core.steps.robustness import robustness_markdown
from manifpt_core.store import Outcome, Store, class_names, combine_hashes, run_cached
from manifpt_core.store.records import NMIResult, Report, ReportRow, ReportSummary

REPORT_VERSION = "9"


def report_methods(settings: Settings) -> list[Method]:
    """The report's rows in order: every artifact method, the raw-image control, then the baselines."""
    return [*settings.methods, CONTROL, *(Method.of_baseline(b) for b in settings.baselines.methods)]


def _inputs(store: Store, settings: Settings, models: list[str]) -> dict[str, str]:
    inputs = {}
    for method in report_methods(settings):
        key = f"baseline/{method.baseline}" if method.is_baseline else f"attributor/{method}"
        inputs[key] = store.attributor_record(method).content_hash
    for space in settings.spaces:
        inputs[f"space/{space}"] = store.space(space).content_hash
        inputs[f"index/{space}"] = store.index(space).content_hash
    for model in models:
        inputs[f"generator/{model}"] = store.generator(model).content_hash
        inputs[f"images/{model}"] = store.model(model).record.content_hash
    inputs["robustness"] = store.robustness().content_hash
    return inputs


def _table_row(store: Store, settings: Settings, method: Method, figures: Path) -> ReportRow:
    """One method's row of the main table; its figures are copied beside the report."""
    m = store.attributor(method)
    folder = store.method_dir(method)
    confusion, per_class = f"confusion_{method.slug}.png", f"per_class_{method.slug}.png"
    shutil.copyfile(folder / m.confusion_png, figures / confusion)
    shutil.copyfile(folder / m.per_class_png, figures / per_class)
    return ReportRow(method=method_label(method, settings), key=str(method), space=method.space,
                     kind="baseline" if method.is_baseline else method.kind, network=m.network,
                     accuracy_mean=m.accuracy_mean, accuracy_std=m.accuracy_std, fdr_mean=m.fdr_mean,
                     fdr_std=m.fdr_std, seeds=m.seeds, n_test=m.n_test,
                     per_seed=[s.test_accuracy for s in m.per_seed], per_class_accuracy=m.per_class_accuracy,
                     open_set=m.open_set, confusion=m.confusion, figure=f"figures/{confusion}",
                     per_class_figure=f"figures/{per_class}", training=m.training)


def _generators(store: Store, models: list[str], figures: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    grids, generators = {}, []
    for model in models:
        grid = store.paths.generator_grid(model)
        if grid.is_file():
            shutil.copyfile(grid, figures / f"samples_{model}.png")
            grids[model] = f"figures/samples_{model}.png"
        gen, images = store.generator(model).summary, store.model(model).summary
        generators.append({"model": model, "family": (gen.card or {}).get("family", "folder"),
                           "factors": gen.factors, "n_samples": images.n_samples,
                           "frechet_to_real": images.frechet_to_real})
    return grids, generators


def write_report(store: Store, settings: Settings, models: list[str]) -> Outcome[ReportSummary]:
    """Gather every attributor's and baseline's metrics into the report."""
    inputs = _inputs(store, settings, models)

    def compute(tmp: Path, fp: str) -> tuple[str, ReportSummary]:
        figures = tmp / "figures"
        figures.mkdir(parents=True)
        table = [_table_row(store, settings, method, figures) for method in report_methods(settings)]
        grids, generators = _generators(store, models, figures)
        real = store.real.summary
        classes = class_names(models)
        factors = {g["model"]: g["factors"] for g in generators}
        nmi = nmi_table(store, list(settings.methods), classes, factors)
        report = Report(
            dataset=store.dataset, profile=settings.profile, classes=classes,
            chance_accuracy=1.0 / (len(models) + 1),
            samples={"reference": real.n_reference, "real_class": real.n_real_class, "per_model": settings.n_per_model},
            main_table=table, nmi=nmi,
            tsne=tsne_maps(store, [*settings.methods, CONTROL], classes, figures, seed=settings.data_seed),
            spaces=[_space_row(store, space) for space in settings.spaces], sample_grids=grids,
            generators=generators, frechet_space=real.frechet_space, frechet_real_floor=real.frechet_real_floor,
            inputs=inputs, fingerprint=fp, robustness=_robustness(store, figures),
            parsing=model_parsing_table(store, list(settings.methods), classes, factors, seed=settings.data_seed))
        report_json = report.to_dict()
        (tmp / "report.json").write_text(json.dumps(report_json, indent=2))
        (tmp / "report.md").write_text(render_markdown(report))
        keys = ("method", "accuracy_mean", "accuracy_std", "fdr_mean", "fdr_std", "n_test")
        summary = ReportSummary(
            main_table=[{k: r[k] for k in keys} for r in report_json["main_table"]],
            open_set=[{"method": r.method, **{k: v for k, v in r.open_set.to_dict().items() if k != "rows"}}
                      for r in table if r.open_set],
            nmi=nmi, tsne=report.tsne)
        return combine_hashes({"report": json.dumps(report_json, sort_keys=True)}), summary

    return run_cached(store.paths.reports, "report", REPORT_VERSION, inputs,
                      {"methods": [str(m) for m in settings.methods], "baselines": list(settings.baselines.methods),
                       "artifacts": settings.artifacts.settings()}, compute, ReportSummary)


def _robustness(store: Store, figures: Path) -> dict[str, Any]:
    """The robustness step's table, its figure copied beside the report."""
    record = store.robustness()
    shutil.copyfile(store.paths.robustness / record.summary.figure, figures / "robustness.png")
    return record.summary.to_dict() | {"figure": "figures/robustness.png"}


def main_table_markdown(report: Report) -> str:
    """The main table in short (Dagster metadata): method, network, accuracy, FDR, test samples."""
    lines = ["| method | network | test accuracy | FDR | test samples |", "|---|---|---|---|---|"]
    lines += [f"| {r.method} | {r.network} | {format_mean_std(r.accuracy_mean, r.accuracy_std, 100, unit='%')} | "
              f"{r.fdr_mean:.2f} | {r.n_test} |" for r in report.main_table]
    return "\n".join(lines)


def nmi_lines(nmi: NMIResult | None) -> list[str]:
    """The report's NMI section: the table, then which models were left out of which factors, and why."""
    if nmi is None:
        return ["## NMI with the design factors", "", "Not computed: no design factor is given by two or more "
                "models (a zoo entry gives its card's factors; a model folder only those of its card.json).", ""]
    names = factor_names(nmi)
    lines = ["## NMI with the design factors", "",
             "k-means on the fingerprint features of the generated test samples, against the grouping of the "
             "models by each design factor (1: the clusters are the factor's groups; 0: unrelated; n/a: one value "
             "only, or fewer than two models give the factor).", "", "| method | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]
    for method, row in nmi.methods.items():
        cells = ["n/a" if row.get(n) is None else f"{row[n]:.3f}" for n in names]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    none = sorted(m for m, lacking in nmi.left_out.items() if set(lacking) == set(names))
    some = {m: lacking for m, lacking in sorted(nmi.left_out.items()) if m not in none}
    if none:
        lines += ["", f"Left out of every factor, since they give no design factors: {', '.join(none)} (a model "
                  "folder gives them in a card.json beside its images)."]
    for model, lacking in some.items():
        lines += ["", f"{model} is left out of {', '.join(lacking)}: its card does not give "
                  f"{'that factor' if len(lacking) == 1 else 'these factors'}."]
    return lines + [""]


def training_lines(table: list[ReportRow]) -> list[str]:
    """The section saying, per attributor and the control, whether it was trained in full or had models enrolled
    (attribution.retrain), and when."""
    rows = [row for row in table if row.training is not None]
    if not rows:
        return []
    enrolled = [row for row in rows if row.training.mode == "enrolled"]
    lines = ["## Training", "",
             f"{len(rows) - len(enrolled)} of {len(rows)} attributors trained in full on every class; "
             f"{len(enrolled)} enrolled new models into a network trained without them (attribution.retrain = "
             "enroll: only the new output rows are trained; the full-retrain schedule trains them again).", "",
             "| method | training |", "|---|---|"]
    lines += [f"| {row.method} | {training_text(row.training)} |" for row in rows]
    return [*lines, ""]


def open_set_lines(table: list[ReportRow]) -> list[str]:
    """The open-set section: per method the mean ± std AUROC of each score over the left-out models, the score
    queries use and its unknown-rejection rate, a table of the chosen score's AUROC per left-out model, and a
    plain sentence for every AUROC below 0.5."""
    rows = [r for r in table if r.open_set]
    if not rows:
        return []
    scores = list(dict.fromkeys(s for r in rows for s in r.open_set.scores))
    held = list(dict.fromkeys(h.held_out for r in rows for h in r.open_set.rows))
    first = rows[0].open_set
    accept = "the stated share" if first.accept is None else f"{100 * first.accept:.0f}%"
    lines = ["## Open set", "",
             f"Each generative model in turn is left out of an attributor's training (seeds {first.seeds}). Every "
             "open-set score is a known-ness (max_softmax: the largest of the seeds' mean class probabilities; "
             "mahalanobis: how near the penultimate features lie to the closest known class, by Mahalanobis distance "
             "with a shared shrunk covariance); its AUROC tells the left-out model's test samples from the known "
             "classes' (1: every unseen image scores below every known one; 0.5: chance; below 0.5: the score is "
             "more confident on the unseen model than on known ones). Mean ± std over the left-out models. Queries "
             "use the score with the higher mean AUROC; *unknown rejected* is the share of the left-out model's "
             f"test images it judges unknown at the operating point (the threshold accepting {accept} of the known "
             "validation images), averaged over the left-out models.", "",
             "| method | " + " | ".join(f"AUROC {s}" for s in scores) + " | queries use | unknown rejected |",
             "|---" * (len(scores) + 3) + "|"]
    for r in rows:
        o = r.open_set
        cells = [format_mean_std(o.auroc_mean[s], o.auroc_std.get(s), digits=3) if s in o.auroc_mean else "n/a"
                 for s in scores]
        rejected = o.rejected_mean.get(o.chosen)
        lines.append(f"| {r.method} | " + " | ".join(cells) + f" | {o.chosen} | "
                     f"{'n/a' if rejected is None else f'{100 * rejected:.1f}%'} |")
    lines += ["", "AUROC of the score queries use, per left-out model:", "",
              "| method | score | " + " | ".join(held) + " |", "|---" * (len(held) + 2) + "|"]
    for r in rows:
        auroc = {h.held_out: h.auroc.get(r.open_set.chosen) for h in r.open_set.rows}
        cells = ["-" if auroc.get(h) is None else f"{auroc[h]:.3f}" for h in held]
        lines.append(f"| {r.method} | {r.open_set.chosen} | " + " | ".join(cells) + " |")
    below = [(r.method, s, [(h.held_out, h.auroc[s]) for h in r.open_set.rows if h.auroc.get(s, 0.5) < 0.5])
             for r in rows for s in r.open_set.scores]
    below = [(method, s, models) for method, s, models in below if models]
    if below:
        lines.append("")
    for method, s, models in below:
        named = ", ".join(f"{h} ({a:.3f})" for h, a in models)
        these = "this unseen model" if len(models) == 1 else "these unseen models"
        lines.append(f"- {method}, {s}: AUROC below 0.5 without {named}: this score is more confident on images of "
                     f"{these} than on images of the known classes.")
    return lines + [""]


def _space_row(store: Store, space: str) -> dict[str, Any]:
    """What made a space and how its index searches: the report's spaces table."""
    card, index = store.space(space).summary, store.index(space).summary
    encoder = card.encoder or {}
    real = store.real.artifacts(space).record.summary
    return {"space": space, "dim": index.dim, "encoder": encoder.get("kind", "none (fixed transform)"),
            "origin": encoder.get("origin", "-"), "arch": encoder.get("arch", "-"),
            "weights_sha256": card.encoder_sha256, "index_kind": index.kind,
            "recall_at_1": (index.recall or {}).get("recall_at_1"),
            "real_mean_nn_dist": real.mean_nn_dist}


def render_markdown(report: Report) -> str:
    """The human-readable report."""
    samples = report.samples
    lines = [
        f"# Model attribution report: {report.dataset} ({report.profile} profile)",
        "",
        f"Classes: {', '.join(report.classes)} (chance accuracy {100 * report.chance_accuracy:.1f}%).",
        f"Samples: {samples['reference']} real reference images (indexed), "
        f"{samples['real_class']} real class images, {samples['per_model']} per generative model.",
        "",
        "## Test accuracy (%)",
        "",
        "| method | network | accuracy | FDR | seeds | test samples |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.main_table:
        lines.append(f"| {row.method} | {row.network} | {format_mean_std(row.accuracy_mean, row.accuracy_std, 100)} | "
                     f"{format_mean_std(row.fdr_mean, row.fdr_std)} | {len(row.seeds)} | {row.n_test} |")
    lines += ["", "Rows after the raw-image control are the baselines (the paper's Table 2), on the same test samples. "
              "A single seed has no spread: ± is shown only with several seeds; a deterministic classifier (k-NN, "
              "logistic regression) shows ± 0. FDR: inter-class over intra-class Fréchet distance of the test "
              "features (a network's penultimate ones; a classical classifier's standardized inputs), higher is more "
              "separable; compare it within one network type, as it grows with the feature dimension.", ""]
    lines += training_lines(report.main_table)
    lines += nmi_lines(report.nmi) + open_set_lines(report.main_table)
    if report.parsing is not None:
        lines += parsing_markdown(report.parsing)
    if report.robustness is not None:
        lines += robustness_markdown(report.robustness, figure=report.robustness["figure"])
    lines += ["## t-SNE of the test samples", ""]
    lines += [f"![t-SNE {name}]({path})" for name, path in report.tsne.items()]
    lines += ["",
              "## Embedding spaces", "",
              "| space | dim | encoder | origin | architecture | index | recall@1 | real-class mean NN distance |",
              "|---|---|---|---|---|---|---|---|"]
    for sp in report.spaces:
        recall = "exact" if sp["recall_at_1"] is None else f"{sp['recall_at_1']:.4f}"
        lines.append(f"| {sp['space']} | {sp['dim']} | {sp['encoder']} | {sp['origin']} | {sp['arch']} | "
                     f"{sp['index_kind']} | {recall} | {sp['real_mean_nn_dist']:.4f} |")
    lines += ["", "## Confusion matrices", ""]
    for row in report.main_table:
        lines += [f"### {row.method}", "", f"![confusion {row.key}]({row.figure})",
                  f"![per-class accuracy {row.key}]({row.per_class_figure})", ""]
    lines += [
        "## Generators",
        "",
        f"Fréchet distance to the held-out real images in the `{report.frechet_space}` space "
        f"(real images score {report.frechet_real_floor:.3f}; noise or collapse scores far higher).",
        "",
        "| model | family | samples | Fréchet distance | design factors |",
        "|---|---|---|---|---|",
    ]
    for g in report.generators:
        factors = ", ".join(f"{k}={v}" for k, v in sorted(g["factors"].items())) or "n/a"
        lines.append(f"| {g['model']} | {g['family']} | {g['n_samples']} | {g['frechet_to_real']:.3f} | {factors} |")
    lines.append("")
    if report.sample_grids:
        lines += ["## Generator samples", ""]
        for model, path in report.sample_grids.items():
            lines += [f"### {model}", "", f"![samples {model}]({path})", ""]
    lines += ["## Provenance", "", f"Report fingerprint `{report.fingerprint}`; inputs:", ""]
    lines += [f"- {name}: `{h[:16]}`" for name, h in sorted(report.inputs.items())]
    return "\n".join(lines) + "\n"
