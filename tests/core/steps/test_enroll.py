"""Enrolling a new model into stored attributors (attribution.retrain = "enroll") and the full retrain."""

import json
import shutil

import numpy as np
import pytest
import torch

from manifpt_core import steps
from manifpt_core.attribution import fit_attributor, load_attributor, predict_logits
from manifpt_core.baselines import features_of
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError
from manifpt_core.names import Method
from manifpt_core.steps import baselines as baseline_step
from manifpt_core.steps.attribute import CONTROL, gather_inputs
from manifpt_core.metrics.separability import fd_ratio, fd_ratio_reusing
from manifpt_core.steps.enroll import features_file, load_fd_pairs, load_features, stack
from manifpt_core.store import Store, class_names

OLD, NEW = ["alpha", "beta"], ["alpha", "beta", "gamma"]
METHODS = [Method.parse("rgb"), CONTROL]


def _settings(root, **overrides):
    data = {"profile": "test", "dataset": "bench", "source": {"kind": "folder", "path": str(root)},
            "n_reference": 120, "n_real_class": 60, "zoo": [], "spaces": ["rgb"], "seeds": [0, 1],
            "attributor": {"epochs": 3, "patience": 3, "batch_size": 16, "widths": [8, 16]},
            "artifacts": {"kinds": ["nearest"], "knn_k": 4}, "baselines": {"methods": []},
            "chunk_rows": 16, "block_rows": 32, "device": "cpu"}
    data.update(overrides)
    return settings_from_dict(data)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, benchmark_factory, png_writer, rgb_store_builder):
    """A store of real, alpha, beta and gamma (diagonal stripes) whose attributors were trained on alpha and
    beta, then enrolled gamma; with the attributors trained without gamma, copied before the enrollment."""
    work = tmp_path_factory.mktemp("enroll")
    root = benchmark_factory(work / "bench")
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:12, 0:12]
    png_writer(root / "gamma", np.clip(rng.uniform(0, 200, (60, 12, 12)) + 60.0 * ((yy - xx) % 4 == 0), 0,
                                       255).astype(np.uint8)[:, None])
    settings = _settings(root)
    store = Store(work / "store", "bench")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rgb_store_builder(store, settings, NEW)
        before = {}
        for method in METHODS:
            steps.train_attributors(store, settings, method, OLD)
            before[method] = {s: load_attributor(store.paths.weights(method, s)) for s in settings.seeds}
        outcomes = {method: steps.train_attributors(store, settings, method, NEW) for method in METHODS}
    finally:
        torch.set_num_threads(threads)
    return settings, store, before, outcomes


@pytest.mark.parametrize("method", METHODS, ids=str)
def test_enrolling_adds_the_class_and_keeps_old_predictions(enrolled, method):
    settings, store, before, outcomes = enrolled
    metrics = store.attributor(method)
    assert not outcomes[method].reused
    assert metrics.classes == class_names(NEW)
    assert metrics.training.mode == "enrolled" and metrics.training.enrolled == ["gamma"]
    assert metrics.training.trunk_classes == class_names(OLD) and metrics.training.enrolled_at is not None
    test = gather_inputs(store, method, class_names(NEW))["test"]
    old_classes, new_classes = class_names(OLD), class_names(NEW)
    kept = [new_classes.index(c) for c in old_classes]
    for seed in settings.seeds:
        old_logits = predict_logits(before[method][seed], test[0])
        new_logits = predict_logits(load_attributor(store.paths.weights(method, seed)), test[0])
        # Head only: every old class's logit is what the attributor trained without gamma gave.
        np.testing.assert_allclose(new_logits[:, kept], old_logits, rtol=1e-4, atol=1e-4)
        on_old = test[1] != new_classes.index("gamma")
        old_pred = np.array(old_classes)[old_logits.argmax(1)][on_old]
        new_pred = np.array(new_classes)[new_logits.argmax(1)][on_old]
        assert set(new_pred[old_pred != new_pred]) <= {"gamma"}
    # The stored test accuracy is the enrolled networks' own.
    y = test[1]
    accs = [float((predict_logits(load_attributor(store.paths.weights(method, s)), test[0]).argmax(1) == y).mean())
            for s in settings.seeds]
    np.testing.assert_allclose([s.test_accuracy for s in metrics.per_seed], accs)
    # Open set: gamma's row is measured on the attributor trained without it.
    assert "gamma" in [r.held_out for r in metrics.open_set.rows]
    assert metrics.operating_point.n_val == len(gather_inputs(store, method, new_classes)["val"][1])


@pytest.mark.parametrize("method", METHODS, ids=str)
def test_the_enrolled_fd_ratio_is_the_one_measured_from_scratch_and_every_pair_is_stored(enrolled, method):
    settings, store, _, _ = enrolled
    classes = class_names(NEW)
    for seed, result in zip(settings.seeds, store.attributor(method).per_seed):
        file = store.method_dir(method) / features_file(seed)
        x_te, y_te = stack(load_features(file, classes), "test", classes)
        assert result.fdr == fd_ratio(x_te, y_te, seed)["fdr"]
        pairs = load_fd_pairs(file)
        assert len(pairs) == len(classes) * (len(classes) - 1) // 2  # the old classes' pairs and gamma's
        assert fd_ratio_reusing(x_te, y_te, seed, known=pairs)[1] == pairs


def test_a_second_run_reuses_the_enrolled_attributor(enrolled):
    settings, store, _, _ = enrolled
    outcome = steps.train_attributors(store, settings, METHODS[0], NEW)
    assert outcome.reused


def test_full_retrain_is_todays_training(enrolled):
    """retrain = full trains from scratch on every class: the weights a direct training gives, bit for bit."""
    settings, store, _, _ = enrolled
    method = METHODS[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcome = steps.train_attributors(store, settings, method, NEW, retrain="full")
        data = gather_inputs(store, method, class_names(NEW))
        direct = fit_attributor(*data["train"], *data["val"], len(class_names(NEW)), settings.attributor,
                                seed=settings.seeds[0], progress=False)
    finally:
        torch.set_num_threads(threads)
    assert not outcome.reused
    metrics = store.attributor(method)
    assert metrics.training.mode == "full" and metrics.training.enrolled == []
    stored = load_attributor(store.paths.weights(method, settings.seeds[0]))
    assert all(torch.equal(stored.state_dict[k], direct.state_dict[k]) for k in direct.state_dict)
    assert (store.method_dir(method) / features_file(settings.seeds[0])).is_file()
    # Enrolling again finds every model present: the full training is reused as it is.
    assert steps.train_attributors(store, settings, method, NEW).reused


def test_a_bad_retrain_value_is_refused(enrolled):
    settings, store, _, _ = enrolled
    with pytest.raises(InputError, match="retrain"):
        steps.train_attributors(store, settings, METHODS[0], NEW, retrain="partial")


def test_cnn_baselines_enroll_and_classical_ones_are_fit_again(enrolled):
    settings, store, _, _ = enrolled
    settings = _settings(settings.source.path, baselines={"methods": ["raw-blurjpeg", "mccloskey"]})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in ("raw-blurjpeg", "mccloskey"):
            steps.run_baseline(store, settings, name, OLD)
        cnn = Method.of_baseline("raw-blurjpeg")
        before = load_attributor(store.paths.weights(cnn, 0))
        steps.run_baseline(store, settings, "raw-blurjpeg", NEW)
        steps.run_baseline(store, settings, "mccloskey", NEW)
    finally:
        torch.set_num_threads(threads)
    metrics = store.attributor(cnn)
    assert metrics.classes == class_names(NEW) and metrics.training.mode == "enrolled"
    assert metrics.training.enrolled == ["gamma"] and metrics.open_set is None
    classical = store.attributor(Method.of_baseline("mccloskey"))
    assert classical.classes == class_names(NEW) and classical.training is None
    # The CNN's old classes keep their logits on the old models' test features.
    images, _ = gather_inputs(store, CONTROL, class_names(NEW), pixels=True)["test"]
    x = features_of("raw-blurjpeg", images, settings.baselines)
    kept = [class_names(NEW).index(c) for c in class_names(OLD)]
    np.testing.assert_allclose(predict_logits(load_attributor(store.paths.weights(cnn, 0)), x)[:, kept],
                               predict_logits(before, x), rtol=1e-4, atol=1e-4)


def test_a_classical_baseline_computes_only_the_new_models_features(enrolled, tmp_path, monkeypatch, caplog):
    """The features a classical baseline keeps per class are read back when a model is added: only the new
    model's images go through the feature function, and every split's features equal a computation from
    nothing. A damaged kept file is named and computed again."""
    settings, store, _, _ = enrolled
    store = Store(shutil.copytree(store.root, tmp_path / "store"), "bench")
    settings = _settings(settings.source.path, baselines={"methods": ["durall-lr"]})
    config = settings.baselines
    steps.run_baseline(store, settings, "durall-lr", OLD)
    calls = []

    def counting(name, images, config_):
        calls.append(len(images))
        return features_of(name, images, config_)

    monkeypatch.setattr(baseline_step, "features_of", counting)
    outcome = steps.run_baseline(store, settings, "durall-lr", NEW)
    gamma = store.source("gamma")
    assert not outcome.reused and calls == [len(gamma.query_rows())]  # gamma's images only
    kept = outcome.path / baseline_step.FEATURES_DIR
    assert sorted(p.name.split(".")[0] for p in kept.glob("*.npz")) == sorted(class_names(NEW))
    images = gather_inputs(store, CONTROL, class_names(NEW), pixels=True)
    read_back = baseline_step.classical_inputs(store, config, "durall-lr", class_names(NEW))
    for split, (x, y) in images.items():
        np.testing.assert_array_equal(read_back[split][0], features_of("durall-lr", x, config))
        np.testing.assert_array_equal(read_back[split][1], y)
    damaged = kept / baseline_step.class_features_file(store, config, "durall-lr", "beta")
    damaged.write_bytes(b"not an npz")
    calls.clear()
    with caplog.at_level("WARNING"):
        again = baseline_step.classical_inputs(store, config, "durall-lr", class_names(NEW))
    assert str(damaged) in caplog.text and calls == [len(store.source("beta").query_rows())]
    for split in images:
        np.testing.assert_array_equal(again[split][0], read_back[split][0])


def test_the_robustness_twins_enroll_the_new_model(enrolled, tmp_path):
    """Twins (the attributors trained with the other augment setting) of an evaluation on alpha and beta get gamma
    enrolled when the evaluation runs again with gamma; with retrain = full they are trained again."""
    import dataclasses
    import shutil

    from manifpt_core.steps.robustness import TWINS_DIR, evaluate_robustness

    settings, store, _, _ = enrolled
    root = tmp_path / "store"
    shutil.copytree(store.root, root)
    store = Store(root, "bench")
    settings = dataclasses.replace(settings, robustness=dataclasses.replace(
        settings.robustness, perturbations=("noise2",), compare_augment=True))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for method in METHODS:
            steps.train_attributors(store, settings, method, OLD, retrain="full")
        evaluate_robustness(store, settings, OLD)
        twin = store.paths.robustness / TWINS_DIR / str(METHODS[0])
        before = load_attributor(twin / "seed0.pt")
        assert json.loads((twin / "metrics.json").read_text())["training"]["mode"] == "full"
        for method in METHODS:
            steps.train_attributors(store, settings, method, NEW)
        outcome = evaluate_robustness(store, settings, NEW)
        twin = store.paths.robustness / TWINS_DIR / str(METHODS[0])
        training = json.loads((twin / "metrics.json").read_text())["training"]
        after = load_attributor(twin / "seed0.pt")
        x = gather_inputs(store, METHODS[0], class_names(NEW))["test"][0]
        kept = [class_names(NEW).index(c) for c in class_names(OLD)]
        full = evaluate_robustness(store, settings, NEW, retrain="full")
    finally:
        torch.set_num_threads(threads)
    assert training["mode"] == "enrolled" and training["enrolled"] == ["gamma"]
    assert set(outcome.summary.classes) == set(class_names(NEW))
    np.testing.assert_allclose(predict_logits(after, x)[:, kept], predict_logits(before, x), rtol=1e-4, atol=1e-4)
    twin = store.paths.robustness / TWINS_DIR / str(METHODS[0])
    assert json.loads((twin / "metrics.json").read_text())["training"]["mode"] == "full"
    assert not full.reused
