"""Model parsing over a store: stored attributor features and model cards, read back through the store's API."""

import json
from pathlib import Path

import numpy as np
import pytest

from manifpt_core.errors import InputError
from manifpt_core.metrics.parsing import leave_one_model_out
from manifpt_core.names import Method
from manifpt_core.steps.attribute import CONTROL, FEATURES_FILE, write_metrics
from manifpt_core.steps.parsing import (
    SECTION,
    factor_predictor,
    factors_of_models,
    generated_features,
    model_parsing_table,
    parsing_markdown,
)
from manifpt_core.store import Store, run_cached
from manifpt_core.store.dataset import class_names
from manifpt_core.store.records import AttributorMetrics, GeneratorSummary

DIM, N_TEST = 8, 12
CARDS = {f"m{i}": {"upsampling": ["transposed_conv", "pixel_shuffle"][i % 2],
                   "loss": "elbo" if i < 4 else "non_saturating"} for i in range(6)}
MODELS = [*CARDS, "folder"]  # a folder of images has no card
RGB = Method.artifacts("rgb")


def store_generator(store: Store, model: str) -> None:
    card = {"name": model, "family": "dcgan", "factors": CARDS[model]} if model in CARDS else None

    def compute(tmp: Path, fp: str):
        tmp.mkdir(parents=True)
        return "0", GeneratorSummary(kind="zoo" if card else "folder", card=card)

    run_cached(store.paths.generator(model), "generator", "test", {}, {"model": model}, compute, GeneratorSummary)


def store_features(store: Store, method: Method, classes: list[str], features: np.ndarray, labels: np.ndarray):
    """What an attributor stores for the report: its metrics and its first seed's test features."""

    def compute(tmp: Path, fp: str):
        tmp.mkdir(parents=True)
        np.savez(tmp / FEATURES_FILE, features=features, labels=labels)
        metrics = AttributorMetrics(
            method=str(method), network="mlp", classes=classes, n_train=0, n_val=0, n_test=len(labels), seeds=[0],
            accuracy_mean=0.0, accuracy_std=None, fdr_mean=1.0, fdr_std=None, per_class_accuracy={}, per_seed=[],
            confusion=[], confusion_png="confusion.png", per_class_png="per_class.png", features_file=FEATURES_FILE)
        write_metrics(tmp, metrics)
        return "0", metrics

    run_cached(store.method_dir(method), "attributor", "test", {}, {"method": str(method)}, compute,
               AttributorMetrics)


def class_features(classes: list[str], encode: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """N_TEST samples per class; with ``encode`` each factor value shifts one dimension by 4."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(classes)), N_TEST)
    features = rng.normal(size=(len(labels), DIM))
    if encode:
        for label, name in enumerate(classes):
            card = CARDS.get(name, {})
            features[labels == label, 0] += 4.0 * (card.get("upsampling") == "pixel_shuffle")
            features[labels == label, 1] += 4.0 * (card.get("loss") == "elbo")
    return features, labels


@pytest.fixture(scope="module")
def parsed_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("store"), "bench")
    classes = class_names(MODELS)
    for model in MODELS:
        store_generator(store, model)
    stored = {RGB: class_features(classes, encode=True, seed=0), CONTROL: class_features(classes, False, seed=1)}
    for method, (features, labels) in stored.items():
        store_features(store, method, classes, features, labels)
    return store, classes, stored


@pytest.fixture(scope="module")
def table(parsed_store):
    store, classes, _ = parsed_store
    return model_parsing_table(store, [RGB], classes, factors_of_models(store, MODELS))


def test_factors_are_read_from_the_cards(parsed_store):
    store, _, _ = parsed_store
    assert factors_of_models(store, MODELS) == {**CARDS, "folder": {}}


def test_generated_features_drop_the_real_class_and_name_the_models(parsed_store):
    store, classes, stored = parsed_store
    features, models = generated_features(store, RGB, classes)
    all_features, labels = stored[RGB]
    np.testing.assert_array_equal(features, all_features[labels > 0])
    assert models.tolist() == [classes[label] for label in labels[labels > 0]]
    assert "real" not in models and len(models) == N_TEST * len(MODELS)


def test_table_equals_the_metric_on_the_stored_features_and_adds_the_control(parsed_store, table):
    store, classes, stored = parsed_store
    factors = factors_of_models(store, MODELS)
    assert list(table) == ["rgb", "raw"]
    for method, (features, labels) in stored.items():
        names = np.asarray(classes, dtype=object)[labels[labels > 0]]
        expected = leave_one_model_out(features[labels > 0], names, factors).to_dict()
        assert table[str(method)] == expected
    rgb = table["rgb"]
    assert rgb["factors"]["upsampling"]["accuracy"] == rgb["factors"]["loss"]["accuracy"] == 1.0
    assert rgb["factors"]["loss"]["baseline"] == pytest.approx(4 / 6)  # 4 elbo, 2 non_saturating
    assert rgb["factors"]["upsampling"]["n_models"] == 6 and rgb["left_out"]["loss"] == ["folder"]
    assert table["raw"]["factors"]["upsampling"]["accuracy"] < 1.0  # noise features carry no factor
    json.dumps(table)  # JSON-safe, for the report


def test_markdown_has_a_table_per_factor_with_the_control_marked(table):
    lines = parsing_markdown(table)
    assert lines[0] == SECTION
    text = "\n".join(lines)
    assert "### loss (6 models)" in text and "### upsampling (6 models)" in text
    assert "| rgb | 100.0% (6/6) | 66.7% |" in text
    raw_rows = [line for line in lines if line.startswith("| raw (raw-image control) |")]
    assert len(raw_rows) == 2
    assert "Left out (no loss on their card): folder." in text
    assert "majority baseline" in text and "leave one model out" in text


def test_markdown_says_why_nothing_was_parsed():
    table = {"rgb": {"factors": {}, "left_out": {"loss": []}, "skipped": {"loss": "2 model(s) have it"}}}
    lines = parsing_markdown(table)
    assert lines[0] == SECTION and "Not computed: loss: 2 model(s) have it." in lines


def test_factor_predictor_names_a_new_model(parsed_store):
    store, classes, _ = parsed_store
    predictor = factor_predictor(store, RGB, classes, factors_of_models(store, MODELS))
    assert predictor.models["loss"] == sorted(CARDS)  # the folder has no card: not fit on
    rng = np.random.default_rng(5)
    new = rng.normal(size=(N_TEST, DIM)) + np.array([4.0, 0.0] + [0.0] * (DIM - 2))  # pixel_shuffle, not elbo
    guesses = predictor.predict(new)
    assert guesses["upsampling"].value == "pixel_shuffle" and guesses["loss"].value == "non_saturating"


def test_the_control_is_not_added_twice(parsed_store):
    store, classes, _ = parsed_store
    assert list(model_parsing_table(store, [CONTROL], classes, factors_of_models(store, MODELS))) == ["raw"]


def test_wrong_classes_and_baselines_are_refused(parsed_store):
    store, classes, _ = parsed_store
    with pytest.raises(InputError, match="differ from the classes"):
        generated_features(store, RGB, classes[:-1])
    with pytest.raises(InputError, match="baseline"):
        model_parsing_table(store, [Method.of_baseline("nataraj")], classes, {})
