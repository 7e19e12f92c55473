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

from manifpt_core.config import Settings, parse_method
from manifpt_core.steps.analysis import factor_names, nmi_table, tsne_maps
from manifpt_core.steps.attribute import RAW, attributor_metrics, classes_for
from manifpt_core.steps.baselines import baseline_metrics
from manifpt_core.steps.cache import Outcome, require_record, run_cached
from manifpt_core.steps.generators import GRID
from manifpt_core.store import Store, combine_hashes

REPORT_VERSION = "6"


def _fmt(mean: float, std: float | None) -> str:
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def write_report(store: Store, settings: Settings, models: list[str]) -> Outcome:
    """Gather every attributor's and baseline's metrics into the report."""
    rows = [*settings.methods, RAW]
    baselines = list(settings.baselines.methods)
    inputs = {f"attributor/{r}": require_record(store.attributor(r), f"the attributor for {r!r}")["content_hash"]
              for r in rows}
    inputs |= {f"baseline/{b}": require_record(store.baseline(b), f"the baseline {b!r}")["content_hash"]
               for b in baselines}
    for space in settings.spaces:
        inputs[f"space/{space}"] = require_record(store.space(space), f"the embedding space {space!r}")["content_hash"]
        inputs[f"index/{space}"] = require_record(store.index(space), f"the index of {space!r}")["content_hash"]
    for model in models:
        inputs[f"generator/{model}"] = require_record(store.generator(model), f"the generator {model!r}")["content_hash"]
        inputs[f"images/{model}"] = require_record(store.images(model), f"the images of {model!r}")["content_hash"]

    def compute(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
        figures = tmp / "figures"
        figures.mkdir(parents=True)
        table = []
        for row in [*rows, *baselines]:
            is_baseline = row in baselines
            m = baseline_metrics(store, row) if is_baseline else attributor_metrics(store, row)
            folder = store.baseline(row) if is_baseline else store.attributor(row)
            shutil.copyfile(folder / m["confusion_png"], figures / f"confusion_{row}.png")
            shutil.copyfile(folder / m["per_class_png"], figures / f"per_class_{row}.png")
            space, kind = (None, "baseline") if is_baseline else (None, None) if row == RAW else parse_method(row)
            label = settings.baselines.label(row) if is_baseline else _method_label(row, settings)
            table.append({"method": label, "key": row,
                          "space": space, "kind": kind,
                          "network": m["network"],
                          "accuracy_mean": m["accuracy_mean"], "accuracy_std": m["accuracy_std"],
                          "fdr_mean": m["fdr_mean"], "fdr_std": m["fdr_std"],
                          "seeds": m["seeds"], "n_test": m["n_test"], "per_seed": [s["test_accuracy"] for s in m["per_seed"]],
                          "per_class_accuracy": m["per_class_accuracy"], "open_set": m["open_set"],
                          "confusion": m["confusion"], "figure": f"figures/confusion_{row}.png",
                          "per_class_figure": f"figures/per_class_{row}.png"})
        spaces = [_space_row(store, space) for space in settings.spaces]
        grids, generators = {}, []
        for model in models:
            grid = store.generator(model) / GRID
            if grid.is_file():
                shutil.copyfile(grid, figures / f"samples_{model}.png")
                grids[model] = f"figures/samples_{model}.png"
            gen = require_record(store.generator(model), f"the generator {model!r}")["summary"]
            images = require_record(store.images(model), f"the images of {model!r}")["summary"]
            card = gen.get("card", {})
            generators.append({"model": model, "family": card.get("family", "folder"),
                               "factors": card.get("factors", {}), "n_samples": images["n_samples"],
                               "frechet_to_real": images["frechet_to_real"]})
        real = require_record(store.images("real"), "the real images")["summary"]
        classes = classes_for(models)
        nmi = nmi_table(store, list(settings.methods), classes, {g["model"]: g["factors"] for g in generators})
        report = {
            "dataset": store.dataset,
            "profile": settings.profile,
            "classes": classes,
            "chance_accuracy": 1.0 / (len(models) + 1),
            "samples": {"reference": real["n_reference"], "real_class": real["n_real_class"],
                        "per_model": settings.n_per_model},
            "main_table": table,
            "nmi": nmi,
            "tsne": tsne_maps(store, rows, classes, figures, seed=settings.data_seed),
            "spaces": spaces,
            "sample_grids": grids,
            "generators": generators,
            "frechet_space": real["frechet_space"],
            "frechet_real_floor": real["frechet_real_floor"],
            "inputs": inputs,
            "fingerprint": fp,
        }
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        (tmp / "report.md").write_text(render_markdown(report))
        keys = ("method", "accuracy_mean", "accuracy_std", "fdr_mean", "fdr_std", "n_test")
        return combine_hashes({"report": json.dumps(report, sort_keys=True)}), {
            "main_table": [{k: r[k] for k in keys} for r in table],
            "open_set": [{"method": r["method"], **r["open_set"]} for r in table if r["open_set"]],
            "nmi": nmi, "tsne": report["tsne"]}

    return run_cached(store.reports, "report", REPORT_VERSION, inputs,
                      {"methods": list(settings.methods), "baselines": baselines,
                       "artifacts": settings.artifacts.settings()}, compute)


def _fmt_plain(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def nmi_lines(nmi: dict[str, dict[str, float]] | None) -> list[str]:
    if not nmi:
        return ["## NMI with the design factors", "", "Not computed: some models have no design factors (folders "
                "without a model card), or there are fewer than two.", ""]
    names = factor_names(nmi)
    lines = ["## NMI with the design factors", "",
             "k-means on the fingerprint features of the generated test samples, against the grouping of the "
             "models by each design factor (1: the clusters are the factor's groups; 0: unrelated; n/a: one value "
             "only).", "", "| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for method, row in nmi.items():
        cells = ["n/a" if row.get(n) is None else f"{row[n]:.3f}" for n in names]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def open_set_lines(table: list[dict[str, Any]]) -> list[str]:
    rows = [r for r in table if r["open_set"]]
    if not rows:
        return []
    held = rows[0]["open_set"]["held_out"]
    lines = ["## Open set", "", f"An attributor trained without `{held}` (first seed); AUROC of 1 − max softmax for "
             f"telling its test samples from the known classes' (0.5: no better than chance).", "",
             "| method | held out | AUROC |", "|---|---|---|"]
    lines += [f"| {r['method']} | {r['open_set']['held_out']} | {r['open_set']['auroc']:.3f} |" for r in rows]
    return lines + [""]


def _method_label(method: str, settings: Settings) -> str:
    if method == RAW:
        return "raw-image control"
    space, kind = parse_method(method)
    if kind == "knn":
        return f"artifacts ({space}, k-NN projection, k={settings.artifacts.knn_k})"
    return f"artifacts ({space}, nearest)"


def _space_row(store: Store, space: str) -> dict[str, Any]:
    """What made a space and how its index searches: the report's spaces table."""
    card = require_record(store.space(space), f"the embedding space {space!r}")["summary"]
    index = require_record(store.index(space), f"the index of {space!r}")["summary"]
    encoder = card.get("encoder") or {}
    real = require_record(store.artifacts(space, "real"), f"the real artifacts in {space!r}")["summary"]
    return {"space": space, "dim": index["dim"], "encoder": encoder.get("kind", "none (fixed transform)"),
            "origin": encoder.get("origin", "-"), "arch": encoder.get("arch", "-"),
            "weights_sha256": card.get("encoder_sha256"), "index_kind": index["kind"],
            "recall_at_1": (index.get("recall") or {}).get("recall_at_1"),
            "real_mean_nn_dist": real["mean_nn_dist"]}


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    lines = [
        f"# Model attribution report: {report['dataset']} ({report['profile']} profile)",
        "",
        f"Classes: {', '.join(report['classes'])} (chance accuracy {100 * report['chance_accuracy']:.1f}%).",
        f"Samples: {report['samples']['reference']} real reference images (indexed), "
        f"{report['samples']['real_class']} real class images, {report['samples']['per_model']} per generative model.",
        "",
        "## Test accuracy (%)",
        "",
        "| method | network | accuracy | FDR | seeds | test samples |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["main_table"]:
        lines.append(f"| {row['method']} | {row['network']} | {_fmt(row['accuracy_mean'], row['accuracy_std'])} | "
                     f"{_fmt_plain(row['fdr_mean'], row['fdr_std'])} | {len(row['seeds'])} | {row['n_test']} |")
    lines += ["", "Rows after the raw-image control are the baselines (the paper's Table 2), on the same test samples. "
              "A single seed has no spread: ± is shown only with several seeds; a deterministic classifier (k-NN, "
              "logistic regression) shows ± 0. FDR: inter-class over intra-class Fréchet distance of the test "
              "features (a network's penultimate ones; a classical classifier's standardized inputs), higher is more "
              "separable; compare it within one network type, as it grows with the feature dimension.", ""]
    lines += nmi_lines(report["nmi"]) + open_set_lines(report["main_table"])
    lines += ["## t-SNE of the test samples", ""]
    lines += [f"![t-SNE {name}]({path})" for name, path in report["tsne"].items()]
    lines += ["",
              "## Embedding spaces", "",
              "| space | dim | encoder | origin | architecture | index | recall@1 | real-class mean NN distance |",
              "|---|---|---|---|---|---|---|---|"]
    for sp in report["spaces"]:
        recall = "exact" if sp["recall_at_1"] is None else f"{sp['recall_at_1']:.4f}"
        lines.append(f"| {sp['space']} | {sp['dim']} | {sp['encoder']} | {sp['origin']} | {sp['arch']} | "
                     f"{sp['index_kind']} | {recall} | {sp['real_mean_nn_dist']:.4f} |")
    lines += ["", "## Confusion matrices", ""]
    for row in report["main_table"]:
        lines += [f"### {row['method']}", "", f"![confusion {row['key']}]({row['figure']})",
                  f"![per-class accuracy {row['key']}]({row['per_class_figure']})", ""]
    lines += [
        "## Generators",
        "",
        f"Fréchet distance to the held-out real images in the `{report['frechet_space']}` space "
        f"(real images score {report['frechet_real_floor']:.3f}; noise or collapse scores far higher).",
        "",
        "| model | family | samples | Fréchet distance | design factors |",
        "|---|---|---|---|---|",
    ]
    for g in report["generators"]:
        factors = ", ".join(f"{k}={v}" for k, v in sorted(g["factors"].items())) or "n/a"
        lines.append(f"| {g['model']} | {g['family']} | {g['n_samples']} | {g['frechet_to_real']:.3f} | {factors} |")
    lines.append("")
    if report["sample_grids"]:
        lines += ["## Generator samples", ""]
        for model, path in report["sample_grids"].items():
            lines += [f"### {model}", "", f"![samples {model}]({path})", ""]
    lines += ["## Provenance", "", f"Report fingerprint `{report['fingerprint']}`; inputs:", ""]
    lines += [f"- {name}: `{h[:16]}`" for name, h in sorted(report["inputs"].items())]
    return "\n".join(lines) + "\n"
