"""Step 5c, robustness: how each method's test accuracy holds when the test images are post-processed.

Every class's test images are taken as stored ("clean") and after each perturbation of
``robustness.perturbations`` (JPEG, down-and-up resizing, blur, noise: :mod:`manifpt_core.perturb`). The
attributors and the raw-image control see them as a query would (:class:`~manifpt_core.query.engine.QueryEngine`:
embedded with the stored encoder, searched in the stored index); a classical baseline is refit per seed on the
clean training features, exactly as its step fits it, and predicts the perturbed images' features; a CNN baseline
uses its stored networks. With ``robustness.compare_augment`` every attributor (and the control) also gets a twin,
trained here with the other ``attributor.augment`` setting, so the table shows what training-time augmentation
buys. Output: ``robustness/robustness.json``, ``robustness.png`` and the twins under ``robustness/twins/``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from manifpt_core.attribution import Predictor, accuracy, load_attributor, predict
from manifpt_core.baselines import CLASSICAL, features_of
from manifpt_core.config import PERTURBATION_NAMES, RETRAIN_CHOICES, Settings
from manifpt_core.errors import InputError, StoreError
from manifpt_core.figures import plt
from manifpt_core.formatting import format_mean_std
from manifpt_core.metrics.separability import mean_std
from manifpt_core.names import Method
from manifpt_core.perturb import perturb
from manifpt_core.spaces import get_space
from manifpt_core.steps.attribute import (
    CONTROL,
    fit_fingerprint,
    fit_seeds,
    gather_inputs,
    seed_metrics,
    training_data,
    write_metrics,
)
from manifpt_core.steps.augment import SharedQueries, method_inputs
from manifpt_core.steps.baselines import classical_inputs, classical_models
from manifpt_core.steps.enroll import Base, added_features, enroll_attributors, features_file, now
from manifpt_core.steps.labels import method_label
from manifpt_core.store import SPLIT_NAMES, Outcome, Store, class_names, combine_hashes, run_cached
from manifpt_core.store.cache import load_record
from manifpt_core.store.layout import METRICS_FILE
from manifpt_core.store.records import AttributorMetrics, Record, RobustnessSummary, TrainingInfo
from manifpt_core.torch_helpers import resolve_device

if TYPE_CHECKING:
    from manifpt_core.query.engine import QueryEngine

logger = logging.getLogger(__name__)

ROBUSTNESS_VERSION = "2"
RESULT_FILE, FIGURE_FILE, TWINS_DIR = "robustness.json", "robustness.png", "twins"
CLEAN = "clean"

Labels = dict[str, np.ndarray]  # a row's name -> predicted labels (seeds, n)


def condition_seed(base: int, name: str) -> int:
    """The seed of one perturbation: ``robustness.seed`` plus the perturbation's fixed position among all names,
    so a perturbation draws the same noise whichever others are listed."""
    return base + PERTURBATION_NAMES.index(name)


def network_methods(settings: Settings) -> list[Method]:
    """The methods evaluated through the query engine: every attributor, then the raw-image control."""
    return [*settings.methods, CONTROL]


def twin_augment(settings: Settings) -> str:
    """The ``attributor.augment`` setting of the twins: the one the pipeline's attributors do not use."""
    return "none" if settings.attributor.augment == "perturb" else "perturb"


def twin_name(method: Method, augment: str) -> str:
    return f"{method} [augment={augment}]"


def _inputs(store: Store, settings: Settings, classes: list[str]) -> dict[str, str]:
    inputs = {}
    for method in network_methods(settings):
        inputs[f"attributor/{method}"] = store.attributor_record(method).content_hash
    for name in settings.baselines.methods:
        inputs[f"baseline/{name}"] = store.attributor_record(Method.of_baseline(name)).content_hash
    for space in settings.spaces:
        inputs[f"space/{space}"] = store.space(space).content_hash
        inputs[f"index/{space}"] = store.index(space).content_hash
    for name in classes:  # the test (and, for the refits and twins, training) images
        inputs[f"images/{name}"] = store.source(name).record.content_hash
    return inputs


def _step_settings(settings: Settings, classes: list[str]) -> dict[str, Any]:
    r, config = settings.robustness, settings.baselines
    out = {"robustness": {"perturbations": list(r.perturbations), "seed": r.seed, "compare_augment": r.compare_augment},
           "seeds": list(settings.seeds), "classes": classes, "methods": [str(m) for m in network_methods(settings)],
           "baselines": {name: config.params(name) for name in config.methods},
           "artifacts": settings.artifacts.settings(), "search": settings.search.settings()}
    if r.compare_augment:
        out["twins"] = {"fit": fit_fingerprint(settings.attributor, resolve_device(settings.device)),
                        "augment": twin_augment(settings),
                        "augment_seed": settings.data_seed}
    return out


def evaluate_robustness(store: Store, settings: Settings, models: list[str],
                        retrain: str | None = None) -> Outcome[RobustnessSummary]:
    """Every method's test accuracy per seed on the clean and on each perturbed copy of the test images, mean ±
    std over seeds and the drop from clean; with ``robustness.compare_augment`` also each attributor's twin.

    The twins follow ``retrain`` (default ``settings.attribution.retrain``) as the attributors do: with
    ``enroll``, the twins stored by the previous evaluation, when made with the same settings from the same
    inputs, get the new models enrolled (or are kept as they are) instead of being trained again."""
    classes = class_names(models)
    inputs = _inputs(store, settings, classes)
    retrain = retrain or settings.attribution.retrain
    if retrain not in RETRAIN_CHOICES:
        raise InputError(f"retrain = {retrain!r} is not one of {list(RETRAIN_CHOICES)}")
    base = (_twin_base(store, settings, inputs, classes)
            if retrain == "enroll" and settings.robustness.compare_augment else None)
    previous = base[0] if base is not None else None
    step_settings = _step_settings(settings, classes)
    if settings.robustness.compare_augment:
        # As for the attributors: the stored twins' own entry when they keep their classes (copied as they are),
        # else an enrollment from that evaluation, else a full training.
        step_settings["twins_training"] = ({"mode": "full"} if base is None else
                                           base[1].settings.get("twins_training") if base[1].settings["classes"] == classes
                                           else {"mode": "enrolled", "base": base[1].fingerprint})

    phases: dict[str, float] = {}

    def compute(tmp: Path, fp: str) -> tuple[str, RobustnessSummary]:
        tmp.mkdir(parents=True)
        device = resolve_device(settings.device)
        start = time.perf_counter()
        twins, twin_hashes = (_train_twins(store, settings, classes, tmp / TWINS_DIR, device, previous)
                              if settings.robustness.compare_augment else ({}, {}))
        phases["twins"] = time.perf_counter() - start
        start = time.perf_counter()
        images = gather_inputs(store, CONTROL, classes, pixels=True)
        test_images, y_test = images["test"]
        # Imported here: the query engine is built on the steps, and this step on the engine.
        from manifpt_core.query.engine import QueryEngine

        engine = QueryEngine(store, settings, network_methods(settings), device=device)
        baselines = _fit_baselines(store, settings, classes)
        conditions = [CLEAN, *settings.robustness.perturbations]
        seeds = {name: condition_seed(settings.robustness.seed, name) for name in settings.robustness.perturbations}
        accuracies, changed = {}, {}
        for condition in conditions:
            x = test_images if condition == CLEAN else perturb(test_images, condition, seeds[condition])
            if condition != CLEAN:
                changed[condition] = float((x != test_images).reshape(len(x), -1).any(axis=1).mean())
            labels = {**_network_labels(engine, twins, x, settings.block_rows),
                      **_baseline_labels(baselines, settings, x, device)}
            accuracies[condition] = {name: [accuracy(y_test, seed_labels) for seed_labels in per_seed]
                                     for name, per_seed in labels.items()}
            logger.info("robustness %s: %s", condition,
                        ", ".join(f"{name} {np.mean(a):.3f}" for name, a in accuracies[condition].items()))
        summary = RobustnessSummary(
            dataset=store.dataset, classes=classes, seeds=list(settings.seeds), n_test=len(y_test),
            conditions=conditions, perturbation_seeds=seeds, changed_share=changed,
            rows=[_row(entry, accuracies, conditions) for entry in _row_entries(settings, twins)], figure=FIGURE_FILE)
        text = json.dumps(summary.to_dict(), indent=2)
        (tmp / RESULT_FILE).write_text(text)
        save_robustness_figure(summary, tmp / FIGURE_FILE)
        phases["evaluation"] = time.perf_counter() - start
        logger.info("robustness: twins %s in %.1f s, evaluation of %d test images under %d conditions in %.1f s",
                    (step_settings.get("twins_training") or {}).get("mode", "none"), phases["twins"], len(y_test),
                    len(conditions), phases["evaluation"])
        return combine_hashes({"robustness": text, "twins": combine_hashes(twin_hashes)}), summary

    outcome = run_cached(store.paths.robustness, "robustness", ROBUSTNESS_VERSION, inputs, step_settings, compute,
                         RobustnessSummary)
    return dataclasses.replace(outcome, phases=phases) if phases else outcome


def _twin_base(store: Store, settings: Settings, inputs: dict[str, str], classes: list[str]
               ) -> tuple[Path, Record[RobustnessSummary]] | None:
    """The twins folder and record of the stored evaluation if its twins can be enrolled into: same version and
    settings but the classes, the same images, spaces and indexes for the classes both have. Else None (train)."""
    try:
        record = load_record(store.paths.robustness, RobustnessSummary)
    except StoreError as err:
        logger.warning("the stored robustness evaluation is unreadable (%s); training the twins in full", err)
        return None
    if record is None or record.version != ROBUSTNESS_VERSION:
        return None
    current = json.loads(json.dumps(_step_settings(settings, classes)))
    changed = sorted(k for k in set(current) | set(record.settings)
                     if k not in ("classes", "twins_training") and current.get(k) != record.settings.get(k))
    stale = sorted(k for k in set(record.inputs) & set(inputs)
                   if not k.startswith(("attributor/", "baseline/")) and record.inputs[k] != inputs[k])
    folder = store.paths.robustness / TWINS_DIR
    complete = all((folder / str(m) / features_file(s)).is_file() for m in network_methods(settings)
                   for s in settings.seeds)
    if changed or stale or not complete:
        logger.info("robustness: training the twins in full, not enrolling (settings %s changed, inputs %s changed, "
                    "stored features %s)", changed, stale, "complete" if complete else "missing")
        return None
    return folder, record


def _train_twins(store: Store, settings: Settings, classes: list[str], folder: Path, device: str,
                 previous: Path | None = None
                 ) -> tuple[dict[str, tuple[Method, list[tuple[int, Predictor]]]], dict[str, str]]:
    """Each attributor and the control trained again with the other augment setting, as the attributor step trains
    them (same seeds and settings otherwise), under ``folder/<method>/``: {row name: (method, its networks)} and
    the weights' hashes. With ``previous`` (a stored twins folder, see :func:`_twin_base`), the models its twins
    lack are enrolled into them instead."""
    augment = twin_augment(settings)
    fit = dataclasses.replace(settings.attributor, augment=augment)
    twins, hashes = {}, {}
    shared = SharedQueries()  # an attributor and its k-NN variant augment the same images in the same space
    for method in network_methods(settings):
        name = twin_name(method, augment)
        out = folder / str(method)
        network = "resnet" if method.is_control or get_space(method.space).image_shaped else "mlp"
        if previous is not None:
            old = AttributorMetrics.from_dict(json.loads((previous / str(method) / METRICS_FILE).read_text()))
            base = Base(previous / str(method), "", old.classes, {}, old)
            added = [c for c in classes if c not in base.classes]
            data = training_data(store, settings, method, added, fit, device, shared) if added else None
            fresh = added_features(base, data, added, list(settings.seeds), device)
            enrolled = enroll_attributors(base, fresh, classes, list(settings.seeds), out, name, network,
                                          seed_metrics, None, None, figures=False)
            write_metrics(out, enrolled.metrics)
            weight_hashes = {k: v for k, v in enrolled.hashes.items() if k.isdigit()}
        else:
            out.mkdir(parents=True)
            data = training_data(store, settings, method, classes, fit, device, shared)
            fits = fit_seeds(data, classes, fit, settings.seeds, device, out, name)
            n_split = tuple(len(data[split][1]) for split in SPLIT_NAMES)
            write_metrics(out, seed_metrics(out, name, network, classes, fits.per_seed, fits.matrices,
                                            n_split=n_split, figures=False, training=TrainingInfo(
                                                mode="full", trained_at=now(), trunk_classes=classes, enrolled=[])))
            weight_hashes = fits.weight_hashes
        twins[name] = (method, [(seed, Predictor(load_attributor(out / f"seed{seed}.pt"), device))
                                for seed in settings.seeds])
        hashes.update({f"{method}/{seed}": h for seed, h in weight_hashes.items()})
    return twins, hashes


def _network_labels(engine: QueryEngine, twins: dict[str, tuple[Method, list[tuple[int, Predictor]]]],
                    images: np.ndarray, block: int) -> Labels:
    """Every seed's predicted labels of the engine's methods and of the twins, computed as queries, block by
    block (a twin reads the artifacts the engine made for the block)."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), block):
        chunk = images[start : start + block]
        out = engine.compute(chunk)
        for name, probabilities in out.probabilities.items():
            parts.setdefault(name, []).append(probabilities.argmax(axis=2))
        for name, (method, networks) in twins.items():
            x = method_inputs(method, chunk, out.arrays, engine.shape)
            parts.setdefault(name, []).append(np.stack([net.proba(x).argmax(axis=1) for _, net in networks]))
    return {name: np.concatenate(p, axis=1) for name, p in parts.items()}


def _fit_baselines(store: Store, settings: Settings, classes: list[str]) -> dict[str, list[Any]]:
    """Each baseline's classifier per seed: a classical one refit on the clean training features exactly as the
    baseline step fits it (it keeps no model; its features it keeps are read back), a CNN's stored network."""
    config = settings.baselines
    out = {}
    for name in config.methods:
        classifier = config.classifier(name)
        if classifier in CLASSICAL:
            x, y = classical_inputs(store, config, name, classes)["train"]
            out[name] = classical_models(name, config, x, y, settings.seeds)
        else:
            method = Method.of_baseline(name)
            out[name] = [load_attributor(store.paths.weights(method, seed)) for seed in settings.seeds]
    return out


def _baseline_labels(baselines: dict[str, list[Any]], settings: Settings, images: np.ndarray, device: str) -> Labels:
    labels = {}
    for name, models in baselines.items():
        features = features_of(name, images, settings.baselines)
        key = str(Method.of_baseline(name))
        if settings.baselines.classifier(name) in CLASSICAL:
            flat = features.reshape(len(features), -1)
            labels[key] = np.stack([model.predict(flat) for model in models])
        else:
            labels[key] = np.stack([predict(result, features, device=device) for result in models])
    return labels


def _row_entries(settings: Settings, twins: dict[str, tuple[Method, Any]]) -> list[dict[str, Any]]:
    """The table's rows in order (each attributor followed by its twin, the control, the baselines) without their
    numbers: name, key, label, group and augment setting."""
    by_method = {str(method): name for name, (method, _) in twins.items()}
    augment = twin_augment(settings)
    rows = []
    for method in network_methods(settings):
        group = "control" if method.is_control else "attributor"
        label = method_label(method, settings)
        rows.append({"method": str(method), "key": str(method), "label": label, "group": group,
                     "augment": settings.attributor.augment})
        if str(method) in by_method:
            rows.append({"method": by_method[str(method)], "key": str(method), "label": f"{label} [augment={augment}]",
                         "group": "twin", "augment": augment})
    for name in settings.baselines.methods:
        key = str(Method.of_baseline(name))
        label = f"{settings.baselines.label(name)} ({settings.baselines.classifier(name)})"  # two share a label
        rows.append({"method": key, "key": key, "label": label, "group": "baseline", "augment": None})
    return rows


def _row(entry: dict[str, Any], accuracies: dict[str, dict[str, list[float]]], conditions: list[str]
         ) -> dict[str, Any]:
    clean = float(np.mean(accuracies[CLEAN][entry["method"]]))
    cells = {}
    for condition in conditions:
        per_seed = accuracies[condition][entry["method"]]
        mean, std = mean_std(per_seed)
        cells[condition] = {"per_seed": per_seed, "mean": mean, "std": std, "drop": clean - mean}
    return {**entry, "accuracy": cells}


def save_robustness_figure(summary: RobustnessSummary, path: Path) -> Path:
    """A heatmap of the mean test accuracy (%) of every row under every condition, values written in."""
    values = np.array([[row["accuracy"][c]["mean"] for c in summary.conditions] for row in summary.rows])
    fig, ax = plt.subplots(figsize=(2.5 + 1.0 * len(summary.conditions), 1.2 + 0.38 * len(summary.rows)))
    im = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(summary.conditions)), summary.conditions, rotation=30, ha="right")
    ax.set_yticks(range(len(summary.rows)), [row["method"] for row in summary.rows])
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{100 * values[i, j]:.1f}", ha="center", va="center", fontsize=7,
                    color="black" if values[i, j] > 0.6 else "white")
    ax.set_title(f"{summary.dataset}: test accuracy (%) after post-processing")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path


def robustness_markdown(result: RobustnessSummary | Mapping[str, Any], figure: str | None = None) -> list[str]:
    """The report's section on robustness: one row a method, one column a condition, accuracy (%) mean ± std over
    seeds and, after a perturbation, the change from clean in points. ``result``: the summary, or
    ``robustness.json`` read back; ``figure``: a link to its heatmap, shown under the table when given."""
    summary = result if isinstance(result, RobustnessSummary) else RobustnessSummary.from_dict(dict(result))
    conditions = summary.conditions
    how = (f"Test accuracy (%) of every method on the {summary.n_test} test images as stored (clean) and after "
           "each post-processing (applied to the images before they are embedded, as a query's would be), mean ± std "
           f"over {len(summary.seeds)} seed(s), with the change from clean in points in brackets; classical "
           "baselines are refit per seed on the clean training features and networks are the stored ones.")
    if any(row["group"] == "twin" for row in summary.rows):
        how += (" A row marked [augment=…] is the attributor above it trained again with the other training-time "
                "augmentation setting (attributor.augment).")
    lines = ["## Robustness to post-processing", "", how, "", "| method | " + " | ".join(conditions) + " |", "|---" * (len(conditions) + 1) + "|"]
    for row in summary.rows:
        cells = []
        for condition in conditions:
            cell = row["accuracy"][condition]
            text = format_mean_std(cell["mean"], cell["std"], 100)
            change = 0.0 - 100 * cell["drop"]  # 0.0 - x: no "-0.00" for an unchanged accuracy
            cells.append(text if condition == CLEAN else f"{text} ({change:+.2f})")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    if figure:
        lines += [f"![robustness]({figure})", ""]
    return lines
