"""Robustness to post-processing and training-time augmentation, on a small folder benchmark (tiny profile sizes):
clean accuracies equal the stored ones, perturbed ones equal a brute-force evaluation, augmentation replaces the
training inputs it says it does, and the step is cached."""

import dataclasses
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from manifpt_core import steps
from manifpt_core.attribution import load_attributor, predict
from manifpt_core.config import PERTURBATION_NAMES, PROFILES, settings_from_dict
from manifpt_core.names import Method
from manifpt_core.perturb import perturb, random_perturbation
from manifpt_core.query import QueryEngine
from manifpt_core.spaces import get_space
from manifpt_core.steps.attribute import CONTROL, gather_inputs, training_data
from manifpt_core.steps.augment import SharedQueries, augmented_rows
from manifpt_core.steps.robustness import condition_seed, evaluate_robustness, robustness_markdown
from manifpt_core.store import Store, class_names
from manifpt_core.store.records import AttributorMetrics

pytestmark = pytest.mark.slow  # the whole pipeline, then every attributor trained again (about two minutes)

MODELS = ["alpha", "beta"]


def tiny_settings(root, **overrides):
    return settings_from_dict({**PROFILES["tiny"], "profile": "tiny", "dataset": "bench",
                               "source": {"kind": "folder", "path": str(root)}, "n_reference": 120,
                               "n_real_class": 60, "zoo": [], "seeds": [0, 1], "chunk_rows": 16, "block_rows": 32,
                               "device": "cpu", "robustness": {"compare_augment": True}, **overrides})


def with_augment(settings, augment):
    return dataclasses.replace(settings, attributor=dataclasses.replace(settings.attributor, augment=augment))


def brute_force_rgb_artifacts(store, images):
    """Each image's rgb embedding minus its nearest reference embedding (exhaustive search), image-shaped."""
    reference = store.real.reference_embeddings("rgb")
    queries = get_space("rgb").embed(images)
    distances = ((queries[:, None].astype(np.float64) - reference[None]) ** 2).sum(-1)
    return (queries - reference[distances.argmin(axis=1)]).reshape(images.shape)


@pytest.fixture(scope="module")
def built(tmp_path_factory, benchmark_factory, single_thread):
    work = tmp_path_factory.mktemp("robustness")
    settings = tiny_settings(benchmark_factory(work / "bench"))
    store = Store(work / "home" / "store", "bench")
    steps.run_pipeline(store, settings, MODELS)
    outcome = evaluate_robustness(store, settings, MODELS)
    rows = {row["method"]: row for row in outcome.summary.rows}
    return SimpleNamespace(work=work, settings=settings, store=store, outcome=outcome, rows=rows,
                           classes=class_names(MODELS))


def test_every_method_and_condition_is_a_row_with_mean_std_and_drop(built):
    s = built.outcome.summary
    methods = [*built.settings.methods, CONTROL]
    expected = [name for m in methods for name in (str(m), f"{m} [augment=perturb]")]
    expected += [f"baseline:{b}" for b in built.settings.baselines.methods]
    assert [row["method"] for row in s.rows] == expected
    assert s.conditions == ["clean", *PERTURBATION_NAMES]
    assert s.perturbation_seeds == {name: condition_seed(0, name) for name in PERTURBATION_NAMES}
    for row in s.rows:
        clean = np.mean(row["accuracy"]["clean"]["per_seed"])
        for cell in row["accuracy"].values():
            assert len(cell["per_seed"]) == 2
            assert cell["mean"] == pytest.approx(np.mean(cell["per_seed"]))
            assert cell["std"] == pytest.approx(np.std(cell["per_seed"], ddof=1))
            assert cell["drop"] == pytest.approx(clean - cell["mean"])
    on_disk = json.loads((built.outcome.path / "robustness.json").read_text())
    assert on_disk == json.loads(json.dumps(s.to_dict()))
    assert (built.outcome.path / "robustness.png").stat().st_size > 0


def test_clean_accuracy_is_each_methods_stored_test_accuracy(built):
    for method in [*built.settings.methods, CONTROL, *(Method.of_baseline(b) for b in built.settings.baselines.methods)]:
        stored = [s.test_accuracy for s in built.store.attributor(method).per_seed]
        assert built.rows[str(method)]["accuracy"]["clean"]["per_seed"] == pytest.approx(stored, abs=1e-12), method
    for method in [*built.settings.methods, CONTROL]:  # the twins: the test accuracy their training measured
        twin = json.loads((built.outcome.path / "twins" / str(method) / "metrics.json").read_text())
        stored = [s["test_accuracy"] for s in twin["per_seed"]]
        row = built.rows[f"{method} [augment=perturb]"]
        assert row["accuracy"]["clean"]["per_seed"] == pytest.approx(stored, abs=1e-12), method


def test_the_twins_keep_their_numbers_but_draw_no_figures(built):
    """No report or asset shows a twin's confusion matrix or per-class bars, so none is drawn; the attributors
    the report shows keep theirs."""
    for method in [*built.settings.methods, CONTROL]:
        folder = built.outcome.path / "twins" / str(method)
        twin = AttributorMetrics.from_dict(json.loads((folder / "metrics.json").read_text()))
        assert twin.confusion_png is None and twin.per_class_png is None
        assert len(twin.confusion) == len(built.classes) and set(twin.per_class_accuracy) == set(built.classes)
        assert not list(folder.glob("*.png")), method
        stored = built.store.attributor(method)
        assert (built.store.method_dir(method) / stored.confusion_png).stat().st_size > 0
        assert (built.store.method_dir(method) / stored.per_class_png).stat().st_size > 0


@pytest.mark.parametrize("name", PERTURBATION_NAMES)
def test_perturbed_accuracy_equals_a_brute_force_evaluation(built, name):
    """The control on the perturbed pixels and the rgb attributor on brute-force nearest-reference artifacts of
    the perturbed images, with the stored networks."""
    store, settings = built.store, built.settings
    images, labels = gather_inputs(store, CONTROL, built.classes, pixels=True)["test"]
    perturbed = perturb(images, name, condition_seed(settings.robustness.seed, name))
    assert built.outcome.summary.changed_share[name] == pytest.approx(
        (perturbed != images).reshape(len(images), -1).any(axis=1).mean())
    artifacts = brute_force_rgb_artifacts(store, perturbed)
    inputs = {CONTROL: perturbed.astype(np.float32) / 255, Method.artifacts("rgb"): artifacts}
    for method, x in inputs.items():
        expected = [float((predict(load_attributor(store.paths.weights(method, seed)), x) == labels).mean())
                    for seed in settings.seeds]
        assert built.rows[str(method)]["accuracy"][name]["per_seed"] == pytest.approx(expected, abs=1e-6), method


def test_every_perturbation_changes_every_methods_inputs(built):
    engine = QueryEngine(built.store, built.settings)
    images = gather_inputs(built.store, CONTROL, built.classes, pixels=True)["test"][0][:24]
    clean = engine.compute(images).arrays
    for name in PERTURBATION_NAMES:
        out = engine.compute(perturb(images, name, 0)).arrays
        for space, arrays in out.items():
            for key in ("artifact", "knn_artifact"):
                changed = np.abs(arrays[key] - clean[space][key]).max(axis=1) > 0
                assert changed.mean() > 0.5, (name, space, key)


def test_augmentation_replaces_half_of_each_classs_training_inputs_by_perturbed_artifacts(built):
    store, settings = built.store, with_augment(built.settings, "perturb")
    method = Method.artifacts("rgb", "nearest")
    plain = gather_inputs(store, method, built.classes)
    augmented = training_data(store, settings, method, built.classes, settings.attributor, "cpu")
    for split in ("val", "test"):
        np.testing.assert_array_equal(augmented[split][0], plain[split][0])
        np.testing.assert_array_equal(augmented[split][1], plain[split][1])
    (x_plain, y), (x_aug, y_aug) = plain["train"], augmented["train"]
    np.testing.assert_array_equal(y_aug, y)
    changed = np.flatnonzero((x_aug != x_plain).reshape(len(y), -1).any(axis=1))
    rng = np.random.default_rng(settings.data_seed)
    rows = augmented_rows(y, rng)
    for label in range(len(built.classes)):
        assert (y[rows] == label).sum() == (y == label).sum() // 2
    assert set(changed) <= set(rows) and len(changed) >= 0.9 * len(rows)
    # The replaced rows are the brute-force nearest-reference artifacts of the perturbed images.
    images = gather_inputs(store, CONTROL, built.classes, pixels=True)["train"][0]
    perturbed = random_perturbation(images[rows], rng)
    np.testing.assert_array_equal(x_aug[rows], brute_force_rgb_artifacts(store, perturbed))
    # The control: the perturbed images themselves.
    control = training_data(store, settings, CONTROL, built.classes, settings.attributor, "cpu")["train"][0]
    np.testing.assert_array_equal(control[rows], perturbed.astype(np.float32) / 255)


def test_methods_of_one_space_share_its_query_work_and_get_the_inputs_they_would_alone(built):
    store, settings = built.store, with_augment(built.settings, "perturb")
    shared = SharedQueries()
    methods = [Method.artifacts("rgb", "nearest"), Method.artifacts("rgb", "knn"), Method.artifacts("sl", "nearest"),
               CONTROL]
    computed = []
    for method in methods:
        together = training_data(store, settings, method, built.classes, settings.attributor, "cpu", shared)
        alone = training_data(store, settings, method, built.classes, settings.attributor, "cpu")
        for split in together:
            np.testing.assert_array_equal(together[split][0], alone[split][0], err_msg=f"{method} {split}")
            np.testing.assert_array_equal(together[split][1], alone[split][1])
        computed.append(shared.computed)
    # rgb embedded and searched once for both of its kinds, sl once more; the control reads images only. The
    # perturbed images are drawn once for all four.
    assert computed == [1, 1, 2, 2]
    assert len(shared.perturbed) == 1
    # Another class list is not mistaken for the last one.
    fewer = built.classes[:-1]
    together = training_data(store, settings, methods[2], fewer, settings.attributor, "cpu", shared)
    alone = training_data(store, settings, methods[2], fewer, settings.attributor, "cpu")
    np.testing.assert_array_equal(together["train"][0], alone["train"][0])
    assert shared.computed == 3


def test_an_augmented_attributor_is_a_new_output_with_new_weights(built, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(built.store.root, root)
    store, method = Store(root, "bench"), Method.artifacts("sl", "knn")
    plain = steps.train_attributors(store, built.settings, method, MODELS)
    assert plain.reused
    augmented = steps.train_attributors(store, with_augment(built.settings, "perturb"), method, MODELS)
    assert not augmented.reused and augmented.fingerprint != plain.fingerprint
    assert augmented.summary.n_train == plain.summary.n_train and augmented.summary.n_test == plain.summary.n_test
    # Trained as the robustness step's twin is (same code path, seeds and inputs): the same networks.
    twin = built.outcome.path / "twins" / str(method)
    for seed in built.settings.seeds:
        ours, theirs = load_attributor(store.paths.weights(method, seed)), load_attributor(twin / f"seed{seed}.pt")
        for key, value in ours.state_dict.items():
            np.testing.assert_array_equal(value.numpy(), theirs.state_dict[key].numpy())
    assert steps.train_attributors(store, with_augment(built.settings, "perturb"), method, MODELS).reused


def test_the_step_is_reused_and_a_perturbation_draws_the_same_whatever_else_is_listed(built, tmp_path):
    again = evaluate_robustness(built.store, built.settings, MODELS)
    assert again.reused and again.content_hash == built.outcome.content_hash
    assert again.phases == {} and "phases" not in again.metadata()  # a reuse times nothing
    root = tmp_path / "store"
    shutil.copytree(built.store.root, root)
    store = Store(root, "bench")
    only_noise = dataclasses.replace(built.settings, robustness=dataclasses.replace(
        built.settings.robustness, perturbations=("noise2",), compare_augment=False))
    outcome = evaluate_robustness(store, only_noise, MODELS)
    assert not outcome.reused and outcome.summary.conditions == ["clean", "noise2"]
    # A computation says how long its twins (none here) and its evaluation took, in metadata, not in the output.
    assert set(outcome.phases) == set(outcome.metadata()["phases"]) == {"twins", "evaluation"}
    assert "phases" not in (outcome.path / "robustness.json").read_text()
    assert len(outcome.summary.rows) == len(built.rows) - len(built.settings.methods) - 1  # no twins
    for row in outcome.summary.rows:
        assert row["accuracy"] == {c: built.rows[row["method"]]["accuracy"][c] for c in ("clean", "noise2")}


def test_the_markdown_section_has_a_row_per_method_and_the_changes(built):
    lines = robustness_markdown(built.outcome.summary, figure="../robustness/robustness.png")
    assert lines == robustness_markdown(json.loads((built.outcome.path / "robustness.json").read_text()),
                                        figure="../robustness/robustness.png")
    assert lines[0] == "## Robustness to post-processing"
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == "| method | clean | " + " | ".join(PERTURBATION_NAMES) + " |"
    assert len(table) == 1 + len(built.rows)
    row = built.rows["raw"]
    cell = row["accuracy"]["blur1"]
    expected = f"{100 * cell['mean']:.2f} ± {100 * cell['std']:.2f} ({0.0 - 100 * cell['drop']:+.2f})"
    assert expected in next(line for line in table if line.startswith("| raw-image control |"))
    assert "![robustness](../robustness/robustness.png)" in lines
