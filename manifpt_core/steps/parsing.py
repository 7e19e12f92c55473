"""Model parsing over the store: which design factors of an unseen model its fingerprint features reveal.

Each attributor (and the raw-image control) stores the penultimate features of its test samples
(``test_features.npz``); the generated samples among them, grouped by model, are parsed with
:func:`manifpt_core.metrics.parsing.leave_one_model_out` against the design factors of the models' cards.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manifpt_core.errors import InputError, StoreError
from manifpt_core.metrics.parsing import FactorPredictor, leave_one_model_out
from manifpt_core.names import Method
from manifpt_core.steps.attribute import CONTROL
from manifpt_core.store import Store

SECTION = "## Model parsing: design factors of unseen models"


def factors_of_models(store: Store, models: list[str]) -> dict[str, dict[str, str]]:
    """``{model: {factor: value}}`` from each generator's model card (empty for a folder of images)."""
    return {model: store.generator(model).summary.factors for model in models}


def generated_features(store: Store, method: Method, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A method's stored test features of the generated samples (label > 0) and the model of each."""
    if method.is_baseline:
        raise InputError(f"{method} is a baseline and stores no fingerprint features; parse the attributors' "
                         f"methods or the control ({CONTROL})")
    metrics = store.attributor(method)
    if list(metrics.classes) != list(classes):
        raise InputError(f"classes {classes} differ from the classes {metrics.classes} that {str(method)!r} was "
                         "trained on; pass class_names() of the models of the attributor")
    if metrics.features_file is None:
        raise StoreError(f"{str(method)!r} stored no test features: materialize it again")
    stored = np.load(store.method_dir(method) / metrics.features_file)
    features, labels = stored["features"], stored["labels"]
    generated = labels > 0  # label 0 is the real class: it has no design factors
    return features[generated], np.asarray(classes, dtype=object)[labels[generated]]


def _with_control(methods: list[Method]) -> list[Method]:
    return [*methods, CONTROL] if CONTROL not in methods else list(methods)


def model_parsing_table(store: Store, methods: list[Method], classes: list[str],
                        factors: dict[str, dict[str, str]], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Leave-one-model-out parsing of each method's fingerprints, and of the raw-image control's (added when
    ``methods`` lacks it): ``{method: ParsingResult.to_dict()}``, i.e. per factor the accuracy over held-out
    models, the majority baseline, the number of models and a row per model; plus the models left out of
    each factor (no such factor on their card) and the factors not evaluated, with the reason."""
    return {str(method): leave_one_model_out(*generated_features(store, method, classes), factors, seed=seed).to_dict()
            for method in _with_control(methods)}


def factor_predictor(store: Store, method: Method, classes: list[str], factors: dict[str, dict[str, str]],
                     seed: int = 0) -> FactorPredictor:
    """Factor classifiers fit on a method's stored test features of every model that has design factors, for
    the query engine to parse the features of an unknown image set."""
    features, models = generated_features(store, method, classes)
    return FactorPredictor.fit(features, models, factors, seed=seed)


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def parsing_markdown(table: dict[str, dict[str, Any]]) -> list[str]:
    """The report's model parsing section: a table per factor of each method's leave-one-model-out accuracy
    next to the majority baseline, the raw-image control's row marked."""
    lines = [SECTION, ""]
    if not table:
        return lines + ["Not computed: no method's features were parsed.", ""]
    first = next(iter(table.values()))
    names = sorted({name for result in table.values() for name in result["factors"]})
    lines += [("Each design factor of each model is predicted from the fingerprint features of its generated test "
              "samples by a classifier trained on the other models' samples only (leave one model out; standardized "
              "features, logistic regression weighing every model alike); the model's answer is the majority over "
              "its samples. Accuracy counts held-out models; the majority baseline predicts the value most frequent "
              "among the other models (a tie shares the hit). A method's fingerprints carry a factor to unseen "
              "models where its accuracy is above the baseline, and they carry more than the images show where it "
              "is also above the raw-image control's row. With n models each one is a step of 1/n; a model whose "
              "value no other model has cannot be named and counts as wrong."), ""]
    if not names:
        reasons = "; ".join(f"{k}: {v}" for k, v in first["skipped"].items()) or "no model has design factors"
        return lines + [f"Not computed: {reasons}.", ""]
    for name in names:
        rows = [(method, result["factors"][name]) for method, result in table.items() if name in result["factors"]]
        parsed = rows[0][1]
        heading = f"### {name} ({parsed['n_models']} models"
        if parsed["unpredictable"]:
            heading += f"; value found in no other model: {', '.join(parsed['unpredictable'])}"
        lines += [heading + ")", "", "| method | leave-one-model-out accuracy | majority baseline |", "|---|---|---|"]
        for method, row in rows:
            label = f"{method} (raw-image control)" if Method.parse(method).is_control else method
            correct = sum(m["correct"] for m in row["models"])
            lines.append(f"| {label} | {_percent(row['accuracy'])} ({correct}/{row['n_models']}) | "
                         f"{_percent(row['baseline'])} |")
        if first["left_out"].get(name):
            lines += ["", f"Left out (no {name} on their card): {', '.join(first['left_out'][name])}."]
        lines.append("")
    if first["skipped"]:
        lines += ["Not evaluated: " + "; ".join(f"{k} ({v})" for k, v in first["skipped"].items()) + ".", ""]
    return lines
