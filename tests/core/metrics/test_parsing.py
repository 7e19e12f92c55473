"""Model parsing: leave-one-model-out prediction of design factors, on features with a known answer."""

import numpy as np
import pytest

from manifpt_core.errors import InputError
from manifpt_core.metrics.parsing import FactorPredictor, _baseline_hit, _vote, leave_one_model_out

N_PER_MODEL = 30
DIM = 12


def brute_force_baseline(values: dict[str, str]) -> float:
    """The majority baseline written out: for each held-out model, the most frequent value among the others
    (a tie shares the hit)."""
    hits = []
    for held, truth in values.items():
        others = [v for m, v in values.items() if m != held]
        counts = {v: others.count(v) for v in set(others)}
        tied = [v for v, n in counts.items() if n == max(counts.values())]
        hits.append(1 / len(tied) if truth in tied else 0.0)
    return float(np.mean(hits))


def synthetic(factors: dict[str, dict[str, str]], encoded: dict[str, int], seed: int = 0, model_spread: float = 0.3,
              n: int = N_PER_MODEL, dim: int = DIM) -> tuple[np.ndarray, np.ndarray]:
    """Samples of each model: per encoded factor, a mean shift of 3 along one dimension per value (dimensions
    from ``encoded[factor]`` on), plus a random offset per model (``model_spread``) and unit noise."""
    rng = np.random.default_rng(seed)
    feats, names = [], []
    for model, values in factors.items():
        centre = model_spread * rng.normal(size=dim)
        for factor, start in encoded.items():
            if factor in (values or {}):
                options = sorted({v[factor] for v in factors.values() if v and factor in v})
                centre[start + options.index(values[factor])] += 3.0
        feats.append(centre + rng.normal(size=(n, dim)))
        names += [model] * n
    return np.concatenate(feats), np.array(names)


# upsampling: 3 values x 3 models; loss: 6 models of one value, 3 of the other
ZOO = {f"m{i}": {"upsampling": ["transposed_conv", "nearest_conv", "pixel_shuffle"][i % 3],
                 "loss": "non_saturating" if i < 6 else "elbo"} for i in range(9)}


def test_an_encoded_factor_is_parsed_perfectly_and_the_baseline_is_exact():
    features, models = synthetic(ZOO, {"upsampling": 0, "loss": 3})
    result = leave_one_model_out(features, models, ZOO, seed=0)
    assert set(result.factors) == {"upsampling", "loss"} and not result.skipped
    for name, parsed in result.factors.items():
        assert parsed.accuracy == 1.0 and parsed.n_models == 9 and not parsed.unpredictable
        assert parsed.baseline == brute_force_baseline({m: v[name] for m, v in ZOO.items()})
        assert [p.model for p in parsed.models] == sorted(ZOO)
        assert all(p.predicted == ZOO[p.model][name] and p.predictable for p in parsed.models)
        assert all(0.5 < p.vote_share <= 1.0 and 0.5 < p.mean_probability <= 1.0 for p in parsed.models)
    # hand-computed: upsampling 3/3/3 -> a held-out model's value is never the (tied) majority of the others;
    # loss 6/3 -> right for the six, wrong for the three
    assert result.factors["upsampling"].baseline == 0.0
    assert result.factors["loss"].baseline == pytest.approx(6 / 9)


def test_a_factor_absent_from_the_features_is_not_parsed_even_though_the_models_are_told_apart():
    # each model has its own strong offset (the features identify the model) but the factor is assigned
    # independently of them: what a classifier that saw the held-out model would exploit
    n_models = 30
    factors = {f"m{i:02d}": {"skip": "residual" if i % 2 else "none"} for i in range(n_models)}
    features, models = synthetic(factors, {}, seed=0, model_spread=4.0, n=10, dim=32)
    in_sample = FactorPredictor.fit(features, models, factors, seed=0)
    in_sample_hits = [in_sample.predict(features[models == m])["skip"].value == v["skip"] for m, v in factors.items()]
    assert np.mean(in_sample_hits) == 1.0  # memorized: the models are separable
    parsed = leave_one_model_out(features, models, factors, seed=0).factors["skip"]
    # a coin flip per held-out model: within 3 standard deviations of 1/2 (a leak of the held-out model would
    # give 1.0, as in sample)
    assert abs(parsed.accuracy - 0.5) <= 3 * np.sqrt(0.25 / n_models)
    assert parsed.baseline == brute_force_baseline({m: v["skip"] for m, v in factors.items()}) == 0.0


def test_a_factor_absent_from_identical_features_scores_exactly_the_majority_baseline():
    # every model's samples are the same array: a prediction can depend only on the other models' labels, and
    # with nothing of the factor in the features the classifier falls back to the majority value
    factors = {f"m{i}": {"loss": "elbo" if i < 2 else "denoising"} for i in range(7)}
    rows = np.random.default_rng(0).normal(size=(N_PER_MODEL, DIM))
    models = np.repeat(sorted(factors), N_PER_MODEL)
    parsed = leave_one_model_out(np.tile(rows, (7, 1)), models, factors).factors["loss"]
    assert all(p.predicted == "denoising" for p in parsed.models)  # the majority of the others, every time
    assert parsed.accuracy == parsed.baseline == brute_force_baseline({m: v["loss"] for m, v in factors.items()})
    assert parsed.accuracy == pytest.approx(5 / 7)


def test_models_without_a_factor_are_left_out_and_listed():
    factors = {**ZOO, "folder": None, "nocard": {}, "partial": {"upsampling": "pixel_shuffle"},
               "only_a": {"normalization": "batch"}, "only_b": {"normalization": "layer"}}
    features, models = synthetic(factors, {"upsampling": 0, "loss": 3})
    result = leave_one_model_out(features, models, factors)
    assert result.left_out["loss"] == ["folder", "nocard", "only_a", "only_b", "partial"]
    assert result.left_out["upsampling"] == ["folder", "nocard", "only_a", "only_b"]
    assert [p.model for p in result.factors["loss"].models] == sorted(ZOO)
    assert result.factors["upsampling"].n_models == 10 and result.factors["upsampling"].accuracy == 1.0
    assert "normalization" not in result.factors and "2 model(s)" in result.skipped["normalization"]
    assert result.to_dict()["left_out"]["loss"] == result.left_out["loss"]


def test_a_value_no_other_model_has_is_flagged_and_counted_wrong():
    factors = {**ZOO, "lone": {"upsampling": "bilinear_conv", "loss": "elbo"}}
    features, models = synthetic(factors, {"upsampling": 0, "loss": 4})
    parsed = leave_one_model_out(features, models, factors).factors["upsampling"]
    assert parsed.unpredictable == ["lone"]
    lone = next(p for p in parsed.models if p.model == "lone")
    assert not lone.predictable and not lone.correct and lone.predicted != "bilinear_conv"
    assert parsed.accuracy == pytest.approx(9 / 10)
    assert parsed.baseline == brute_force_baseline({m: v["upsampling"] for m, v in factors.items()})
    assert parsed.to_dict()["models"][sorted(factors).index("lone")]["predictable"] is False


def test_a_factor_with_one_value_or_too_few_models_is_skipped():
    factors = {"a": {"skip": "none", "loss": "elbo"}, "b": {"skip": "none", "loss": "denoising"},
               "c": {"skip": "none"}}
    features, models = synthetic(factors, {})
    result = leave_one_model_out(features, models, factors)
    assert result.factors == {} and set(result.skipped) == {"skip", "loss"}
    assert "1 distinct value" in result.skipped["skip"] and "2 model(s)" in result.skipped["loss"]


def test_predictor_names_the_encoded_values_of_a_new_model():
    features, models = synthetic(ZOO, {"upsampling": 0, "loss": 3})
    predictor = FactorPredictor.fit(features, models, ZOO, seed=0)
    assert predictor.models == {"loss": sorted(ZOO), "upsampling": sorted(ZOO)}
    new = {"new": {"upsampling": "nearest_conv", "loss": "elbo"}}
    new_features, _ = synthetic({**ZOO, **new}, {"upsampling": 0, "loss": 3}, seed=7)
    batch = new_features[-N_PER_MODEL:]
    guesses = predictor.predict(batch)
    assert {k: g.value for k, g in guesses.items()} == new["new"]
    assert all(0.5 < g.confidence <= 1.0 for g in guesses.values())
    rows = predictor.predict_rows(batch)
    assert len(rows) == N_PER_MODEL
    for name, guess in guesses.items():  # the batch answer is the majority of the per-row answers
        values = [r[name].value for r in rows]
        assert max(set(values), key=values.count) == guess.value
        assert all(0.0 < r[name].confidence <= 1.0 for r in rows)
    with pytest.raises(InputError, match=f"samples, {DIM}"):
        predictor.predict(batch[:, :3])


def test_predictor_needs_a_factor_with_two_values():
    factors = {"a": {"skip": "none"}, "b": {"skip": "none"}}
    features, models = synthetic(factors, {})
    with pytest.raises(InputError, match="two distinct values"):
        FactorPredictor.fit(features, models, factors)


def test_vote_breaks_ties_by_mean_probability():
    values = np.array(["a", "b"], dtype=object)
    assert _vote(np.array([[0.9, 0.1], [0.4, 0.6]]), values) == ("a", 0.5, pytest.approx(0.65))
    assert _vote(np.array([[0.55, 0.45], [0.1, 0.9]]), values) == ("b", 0.5, pytest.approx(0.675))
    assert _vote(np.array([[0.2, 0.8], [0.3, 0.7], [0.9, 0.1]]), values) == ("b", pytest.approx(2 / 3),
                                                                             pytest.approx(1.6 / 3))


def test_baseline_shares_a_tie():
    assert _baseline_hit("a", ["a", "a", "b"]) == 1.0
    assert _baseline_hit("b", ["a", "a", "b"]) == 0.0
    assert _baseline_hit("a", ["a", "b", "c", "c", "b", "a"]) == pytest.approx(1 / 3)


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="models must name"):
        leave_one_model_out(np.zeros((4, 2)), np.array(["a", "b"]), {})
    with pytest.raises(InputError, match="NaN"):
        leave_one_model_out(np.full((2, 2), np.nan), np.array(["a", "b"]), {})
    with pytest.raises(InputError, match="factors must map"):
        leave_one_model_out(np.zeros((2, 2)), np.array(["a", "b"]), {"a": "elbo"})


def test_every_fit_of_the_parsing_runs_on_one_blas_thread(blas_threads_in):
    from sklearn.linear_model import LogisticRegression

    counts = blas_threads_in(LogisticRegression)
    features, models = synthetic(ZOO, {"upsampling": 0, "loss": 3})
    leave_one_model_out(features, models, ZOO, seed=0)
    FactorPredictor.fit(features, models, ZOO, seed=0)
    assert len(counts) == 2 * 9 + 2 and set(counts) == {1}  # 9 held out per factor, then one fit per factor
