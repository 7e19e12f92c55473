"""Leave-each-out open-set evaluation on a folder benchmark of three models, checked against brute force: one
AUROC per left-out model and score, the chosen score, the operating point, and queries using that score."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from manifpt_core import query, steps
from manifpt_core.attribution import Predictor, load_attributor
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError, StoreError
from manifpt_core.metrics.openset import MAHALANOBIS, MAX_SOFTMAX, SCORES, ClassStatistics, fit_class_statistics
from manifpt_core.metrics.separability import mean_std
from manifpt_core.names import Method
from manifpt_core.steps.attribute import gather_inputs
from manifpt_core.steps.augment import method_inputs
from manifpt_core.steps.open_set import class_stats_file, knownness, open_set_holdout, open_set_seeds
from manifpt_core.steps.report import open_set_lines
from manifpt_core.store import Store, class_names
from manifpt_core.store.records import OpenSetResult, OperatingPoint

MODELS = ["alpha", "beta", "gamma"]
METHOD = Method.parse("rgb")


def _settings(root, **overrides):
    data = {"profile": "test", "dataset": "bench", "source": {"kind": "folder", "path": str(root)},
            "n_reference": 120, "n_real_class": 60, "zoo": [], "spaces": ["rgb"], "seeds": [0, 1],
            "attributor": {"epochs": 4, "patience": 4, "batch_size": 16, "widths": [8, 16]},
            "artifacts": {"kinds": ["nearest"], "knn_k": 4}, "baselines": {"methods": []},
            "chunk_rows": 16, "block_rows": 32, "device": "cpu"}
    data.update(overrides)
    return settings_from_dict(data)


def _pattern(rng, n, pattern):
    return np.clip(rng.uniform(0, 200, (n, 12, 12)) + pattern, 0, 255).astype(np.uint8)[:, None]


@pytest.fixture(scope="module")
def built(tmp_path_factory, benchmark_factory, png_writer, rgb_store_builder):
    """The rgb attributor (two seeds) of real, alpha and beta of the shared benchmark and a third model gamma
    (diagonal stripes); and an outsider (delta: dots) that it never sees."""
    work = tmp_path_factory.mktemp("open_set")
    root = benchmark_factory(work / "bench")
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:12, 0:12]
    png_writer(root / "gamma", _pattern(rng, 60, 60.0 * ((yy - xx) % 4 == 0)))
    png_writer(work / "delta", _pattern(rng, 30, 80.0 * ((yy % 3 == 0) & (xx % 3 == 0))))
    settings = _settings(root)
    store = Store(work / "store", "bench")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rgb_store_builder(store, settings, MODELS)
        steps.train_attributors(store, settings, METHOD, MODELS)
    finally:
        torch.set_num_threads(threads)
    return settings, store, work / "delta"


def _methods(settings):
    return [METHOD]


def test_leave_each_out_gives_one_auroc_per_model_and_score(built):
    settings, store, _ = built
    for method in _methods(settings):
        result = store.attributor(method).open_set
        assert [r.held_out for r in result.rows] == MODELS and result.scores == list(SCORES)
        assert result.seeds == [0] and result.accept == 0.95
        for score in SCORES:
            aurocs = [r.auroc[score] for r in result.rows]
            assert all(0.0 <= a <= 1.0 for a in aurocs)
            assert (result.auroc_mean[score], result.auroc_std[score]) == pytest.approx(mean_std(aurocs))
            assert result.rejected_mean[score] == pytest.approx(np.mean([r.rejected[score] for r in result.rows]))
        for r in result.rows:  # every test sample of the left-out model is unknown, every other one known
            assert r.n_unknown == 6 and r.n_known == 6 + 2 * 6
        print(method, {s: [round(r.auroc[s], 3) for r in result.rows] for s in SCORES})


def test_the_chosen_score_has_the_higher_mean_auroc_and_the_operating_point_uses_it(built):
    settings, store, _ = built
    for method in _methods(settings):
        metrics = store.attributor(method)
        result = metrics.open_set
        best = max(result.auroc_mean.values())
        assert result.auroc_mean[result.chosen] == best
        if result.auroc_mean[MAX_SOFTMAX] == best:  # a tie goes to the first score
            assert result.chosen == MAX_SOFTMAX
        assert metrics.operating_point.score == result.chosen


def _brute_knownness(store, method, metrics, x, y_train_x):
    """The chosen score's known-ness of inputs ``x``, from the stored networks, their features of the training
    inputs and the stored class statistics (checked against a fresh fit on those features)."""
    x_train, y_train = y_train_x
    probs, features, statistics = [], [], []
    for seed in metrics.seeds:
        net = Predictor(load_attributor(store.paths.weights(method, seed)))
        stored = ClassStatistics.load(store.method_dir(method) / class_stats_file(seed))
        fresh = fit_class_statistics(net.logits(x_train, return_features=True)[1], y_train)
        np.testing.assert_allclose(stored.means, fresh.means, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(stored.precision, fresh.precision, rtol=1e-5, atol=1e-5)
        logits, feats = net.logits(x, return_features=True)
        probs.append(np.exp(logits - logits.max(1, keepdims=True)) / np.exp(logits - logits.max(1, keepdims=True))
                     .sum(1, keepdims=True))
        features.append(feats)
        statistics.append(stored)
    score = metrics.operating_point.score
    if score == MAX_SOFTMAX:
        return np.mean(probs, axis=0).max(axis=1)
    distances = [np.sqrt(np.min([np.einsum("nd,de,ne->n", f - m, s.precision, f - m) for m in s.means], axis=0))
                 for f, s in zip(features, statistics)]
    return 1.0 / (1.0 + np.mean(distances, axis=0))


def test_the_operating_point_accepts_the_stated_share_of_validation_images(built):
    settings, store, _ = built
    classes = class_names(MODELS)
    for method in _methods(settings):
        metrics = store.attributor(method)
        data = gather_inputs(store, method, classes)
        point = metrics.operating_point
        val = _brute_knownness(store, method, metrics, data["val"][0], data["train"])
        assert point.n_val == len(val) and point.accept == 0.95
        # the largest threshold that 95% reach: the (floor(5% of n) + 1)-th smallest score (brute force, up to
        # rounding in the recomputed features), and measured, at least 95% of the validation images reach it
        assert point.threshold == pytest.approx(np.sort(val)[int(np.floor(0.05 * len(val)))], rel=1e-5)
        assert np.mean(val >= point.threshold - 1e-6) >= 0.95
        test = _brute_knownness(store, method, metrics, data["test"][0], data["train"])
        assert point.test_accepted == pytest.approx(np.mean(test >= point.threshold))


def test_a_query_of_an_unseen_model_uses_the_chosen_score(built):
    settings, store, outsider = built
    engine = query.QueryEngine(store, settings, [METHOD])
    answers = query.attribute_images(engine, [outsider])
    images = np.stack([np.asarray(Image.open(a.image))[None] for a in answers])
    out = engine.compute(images)
    classes = class_names(MODELS)
    for method in _methods(settings):
        metrics = store.attributor(method)
        x = method_inputs(method, images, out.arrays, engine.shape)
        expected = _brute_knownness(store, method, metrics, x, gather_inputs(store, method, classes)["train"])
        got = [next(m for m in a.methods if m.method == str(method)) for a in answers]
        assert {m.score_name for m in got} == {metrics.open_set.chosen}
        np.testing.assert_allclose([m.score for m in got], expected, rtol=1e-5)
        assert [m.verdict for m in got] == ["known" if s >= metrics.operating_point.threshold else "unknown"
                                            for s in expected]
        print(method, metrics.open_set.chosen, "outsider rejected:", np.mean([m.verdict == "unknown" for m in got]))


def test_the_mahalanobis_score_in_a_query_is_the_seeds_mean_distance(built):
    # Whichever score a method chose, the distance score computed the query's way equals the direct formula.
    settings, store, outsider = built
    engine = query.QueryEngine(store, settings, [METHOD])
    method = METHOD
    data = gather_inputs(store, method, class_names(MODELS))
    x = data["test"][0]
    (m,) = [m for m in engine.methods if m.method == method]
    outputs = [net.logits(x, return_features=True) for _, net in m.networks]
    statistics = [ClassStatistics.load(store.method_dir(method) / class_stats_file(s)) for s in m.metrics.seeds]
    got = knownness(MAHALANOBIS, None, [f for _, f in outputs], statistics)
    distances = [[min(np.sqrt((f - mu) @ s.precision @ (f - mu)) for mu in s.means) for f in feats]
                 for (_, feats), s in zip(outputs, statistics)]
    np.testing.assert_allclose(got, 1.0 / (1.0 + np.mean(distances, axis=0)), rtol=1e-9)


def test_the_report_shows_every_score_and_the_left_out_models(built):
    settings, store, _ = built
    rows = [SimpleNamespace(method=str(m), open_set=store.attributor(m).open_set) for m in _methods(settings)]
    section = "\n".join(open_set_lines(rows))
    assert "AUROC max_softmax | AUROC mahalanobis | queries use | unknown rejected" in section
    assert "| method | score | alpha | beta | gamma |" in section
    for method in _methods(settings):
        chosen = store.attributor(method).open_set.chosen
        assert f"| {chosen} |" in section
    below = [(m, s) for m in _methods(settings) for s in SCORES
             if any(r.auroc[s] < 0.5 for r in store.attributor(m).open_set.rows)]
    assert ("AUROC below 0.5 without" in section) == bool(below)


def test_holdout_choices_and_seed_count_are_checked(tmp_path):
    root = tmp_path
    settings = _settings(root)
    classes = class_names(MODELS)
    assert open_set_holdout(settings, classes) == MODELS
    assert open_set_holdout(_settings(root, open_set_holdout="auto"), classes) == ["gamma"]
    assert open_set_holdout(_settings(root, open_set_holdout="beta"), classes) == ["beta"]
    assert open_set_holdout(_settings(root, open_set_holdout="none"), classes) == []
    assert open_set_holdout(settings, class_names(["alpha"])) == []  # nothing would stay known besides real
    with pytest.raises(InputError, match="open_set_holdout = 'delta'"):
        open_set_holdout(_settings(root, open_set_holdout="delta"), classes)
    assert open_set_seeds(_settings(root, open_set_seeds=2)) == [0, 1]
    with pytest.raises(InputError, match="open_set_seeds = 3"):
        open_set_seeds(_settings(root, open_set_seeds=3))


def test_metrics_stored_by_the_previous_version_load_as_one_left_out_row():
    old = {"held_out": "beta", "score": "1 - max softmax", "auroc": 0.062, "seed": 0, "n_known": 30, "n_unknown": 6}
    result = OpenSetResult.from_dict(old)
    assert result.chosen == MAX_SOFTMAX and result.auroc_mean == {MAX_SOFTMAX: 0.062} and result.accept is None
    assert [(r.held_out, r.auroc, r.n_unknown) for r in result.rows] == [("beta", {MAX_SOFTMAX: 0.062}, 6)]
    point = OperatingPoint.from_dict({"score": "max softmax (mean over seeds)", "accept": 0.95, "threshold": 0.8,
                                      "n_val": 10, "test_accepted": 0.9})
    assert point.score == MAX_SOFTMAX
    with pytest.raises(StoreError, match="materialize the attributor again"):
        OpenSetResult.from_dict({k: v for k, v in old.items() if k != "auroc"})
