"""NMI with the design factors when some models give none or only some: they are left out and named."""

import numpy as np
import pytest

from manifpt_core.metrics.separability import nmi_per_factor
from manifpt_core.names import Method
from manifpt_core.steps import analysis
from manifpt_core.steps.report import nmi_lines
from manifpt_core.store.records import NMIResult, Report

CLASSES = ["real", "a", "b", "c", "folder", "partial"]
FACTORS = {
    "a": {"loss": "hinge", "upsampling": "transposed_conv"},
    "b": {"loss": "hinge", "upsampling": "nearest_conv"},
    "c": {"loss": "least_squares", "upsampling": "nearest_conv"},
    "folder": {},  # a model folder without card.json
    "partial": {"loss": "least_squares"},  # a card.json that gives only the loss
}
METHOD = Method.artifacts("rgb", "nearest")


@pytest.fixture
def features(monkeypatch):
    """Seeded test features: 40 samples per class, each model's around its own centre, so its loss group is
    separable; the real class (label 0) far away."""
    rng = np.random.default_rng(0)
    centres = {"real": 50.0, "a": 0.0, "b": 1.0, "c": 10.0, "folder": 20.0, "partial": 11.0}
    labels = np.repeat(np.arange(len(CLASSES)), 40)
    x = np.stack([rng.normal(centres[CLASSES[y]], 0.2, 4) for y in labels])
    monkeypatch.setattr(analysis, "_features", lambda store, method: (x, labels))
    return x, labels


def test_models_without_a_factor_are_left_out_of_it_and_named(features):
    x, labels = features
    result = analysis.nmi_table(None, [METHOD], CLASSES, FACTORS)
    assert result.left_out == {"folder": ["loss", "upsampling"], "partial": ["upsampling"]}
    names = np.asarray(CLASSES, dtype=object)[labels]
    for factor, models in {"loss": ["a", "b", "c", "partial"], "upsampling": ["a", "b", "c"]}.items():
        keep = np.isin(names, models)
        expected = nmi_per_factor(x[keep], names[keep], {m: FACTORS[m] for m in models})[factor]
        assert result.methods[str(METHOD)][factor] == pytest.approx(expected)
    # The features separate the loss groups of the models that give one: the clusters are the groups.
    assert result.methods[str(METHOD)]["loss"] == pytest.approx(1.0)
    lines = "\n".join(nmi_lines(result))
    row = result.methods[str(METHOD)]
    assert f"| {METHOD} | 1.000 | {row['upsampling']:.3f} |" in lines
    assert "give no design factors: folder" in lines and "partial is left out of upsampling" in lines


def test_a_factor_given_by_one_model_is_na_and_none_without_two(features):
    one = {"a": {"loss": "hinge", "skip": "residual"}, "b": {"loss": "least_squares"}}
    result = analysis.nmi_table(None, [METHOD], CLASSES, one)
    assert result.methods[str(METHOD)]["skip"] is None and result.methods[str(METHOD)]["loss"] is not None
    assert result.left_out["b"] == ["skip"] and result.left_out["c"] == ["loss", "skip"]
    assert analysis.nmi_table(None, [METHOD], CLASSES, {"a": {"loss": "hinge"}}) is None
    assert "Not computed" in "\n".join(nmi_lines(None))


def test_the_result_round_trips_through_the_report_json(features):
    result = analysis.nmi_table(None, [METHOD], CLASSES, FACTORS)
    data = {"dataset": "d", "profile": "p", "classes": CLASSES, "chance_accuracy": 0.2, "samples": {},
            "main_table": [], "nmi": result.to_dict(), "tsne": {}, "spaces": [], "sample_grids": {},
            "generators": [], "frechet_space": "pca", "frechet_real_floor": 0.0}
    assert Report.from_dict(data).nmi == result and isinstance(Report.from_dict(data).nmi, NMIResult)
