"""Model parsing: predict a generative model's design factors (upsampling, loss, ...) from fingerprint features.

After Asnani et al.'s model parsing: for a model never seen in training, the useful answer is what kind of
model it is. A factor is learned from some models' samples and tested on a model left out of training
(leave one model out), next to the majority-value baseline, so a factor scores well only when the features
carry it from model to model, not when they merely tell the training models apart.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from manifpt_core.blas import one_blas_thread
from manifpt_core.errors import InputError

logger = logging.getLogger(__name__)

C = 1.0  # sklearn's default strength: a factor the features carry outweighs the share of training models per value
MAX_ITER = 2000
MIN_MODELS = 3  # leave-one-model-out needs at least two models to train on for each one held out


class FactorGuess(NamedTuple):
    """A predicted value of one design factor and the classifier's probability of it."""

    value: str
    confidence: float


@dataclass(frozen=True)
class ModelPrediction:
    """One held-out model's prediction for one factor: the majority over its samples."""

    model: str
    truth: str
    predicted: str
    vote_share: float  # share of its samples whose most probable value is ``predicted``
    mean_probability: float  # the classifier's probability of ``predicted``, averaged over its samples
    predictable: bool  # whether ``truth`` occurs among the other models (if not, no classifier can name it)

    @property
    def correct(self) -> bool:
        return self.predicted == self.truth

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "truth": self.truth, "predicted": self.predicted, "correct": self.correct,
                "vote_share": self.vote_share, "mean_probability": self.mean_probability,
                "predictable": self.predictable}


@dataclass(frozen=True)
class FactorParsing:
    """Leave-one-model-out result of one factor: accuracy over held-out models and the majority baseline's."""

    factor: str
    accuracy: float
    baseline: float
    models: tuple[ModelPrediction, ...]

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def unpredictable(self) -> list[str]:
        """Held-out models whose value no other model has (counted as wrong, by the baseline too)."""
        return [p.model for p in self.models if not p.predictable]

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "baseline": self.baseline, "n_models": self.n_models,
                "unpredictable": self.unpredictable, "models": [p.to_dict() for p in self.models]}


@dataclass(frozen=True)
class ParsingResult:
    """Leave-one-model-out results per factor, the models left out of each factor (they lack it), and the
    factors not evaluated with the reason."""

    factors: dict[str, FactorParsing]
    left_out: dict[str, list[str]]
    skipped: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"factors": {name: f.to_dict() for name, f in self.factors.items()},
                "left_out": {k: list(v) for k, v in self.left_out.items()}, "skipped": dict(self.skipped)}


@dataclass(frozen=True)
class _Classifier:
    """Standardize, then a multinomial logistic regression; a single training value is predicted outright."""

    values: np.ndarray  # the column order of :meth:`proba`
    scaler: StandardScaler | None = None
    model: LogisticRegression | None = None

    def proba(self, features: np.ndarray) -> np.ndarray:
        if self.model is None:
            return np.ones((len(features), 1))
        with one_blas_thread():
            return self.model.predict_proba(self.scaler.transform(features))


def _fit(features: np.ndarray, sample_models: np.ndarray, values: Mapping[str, str], seed: int) -> _Classifier:
    """Fit on the samples of the models in ``values`` (``{model: value}``), every model weighing the same
    whatever its number of samples. Values are not rebalanced: features that carry nothing of the factor leave
    the classifier at the share of training models per value, so it predicts the majority value, the baseline."""
    keep = np.isin(sample_models, list(values))
    x, rows = features[keep], sample_models[keep]
    y = np.array([values[m] for m in rows], dtype=object)
    distinct = sorted(set(values.values()))
    if len(distinct) == 1:
        return _Classifier(values=np.array(distinct, dtype=object))
    samples_per_model = Counter(rows.tolist())
    weights = np.array([1.0 / samples_per_model[m] for m in rows])
    weights *= len(weights) / weights.sum()
    with one_blas_thread():  # small products: BLAS threads cost more than they give (manifpt_core.blas)
        scaler = StandardScaler().fit(x)
        model = LogisticRegression(C=C, max_iter=MAX_ITER, random_state=seed)
        model.fit(scaler.transform(x), y, sample_weight=weights)
    return _Classifier(values=model.classes_, scaler=scaler, model=model)


def _vote(proba: np.ndarray, values: np.ndarray) -> tuple[str, float, float]:
    """The majority value over rows of class probabilities, ties broken by the mean probability:
    ``(value, vote share, mean probability)``."""
    votes = np.bincount(proba.argmax(axis=1), minlength=len(values))
    mean = proba.mean(axis=0)
    tied = np.flatnonzero(votes == votes.max())
    best = int(tied[np.argmax(mean[tied])])
    return str(values[best]), float(votes[best] / len(proba)), float(mean[best])


def _baseline_hit(truth: str, others: list[str]) -> float:
    """Whether the most frequent value among ``others`` is ``truth``; a tie between values shares the hit
    (the expected score of picking one of the tied values at random)."""
    counts = Counter(others)
    top = max(counts.values())
    tied = [v for v, n in counts.items() if n == top]
    return 1.0 / len(tied) if truth in tied else 0.0


def _check(features: Any, models: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    features, models = np.asarray(features, dtype=np.float64), np.asarray(models, dtype=object)
    if features.ndim != 2 or len(features) == 0:
        raise InputError(f"features must be a non-empty (samples, dims) array, got shape {features.shape}")
    if models.shape != (len(features),):
        raise InputError(f"models must name the model of each of the {len(features)} samples, got shape "
                         f"{models.shape}")
    if not np.isfinite(features).all():
        raise InputError("features hold NaN or infinite values; give finite fingerprint features")
    if not isinstance(factors, Mapping) or not all(v is None or isinstance(v, Mapping) for v in factors.values()):
        raise InputError("factors must map each model to a mapping {factor: value} (or None: no factors)")
    return features, models


def _factor_values(models: list[str], factors: Mapping[str, Mapping[str, str]]
                   ) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Per factor (sorted): ``({model: value} of the models that have it, [models that lack it])``."""
    known = {m: factors.get(m) or {} for m in models}
    out = {}
    for name in sorted({name for m in models for name in known[m]}):
        values = {m: str(known[m][name]) for m in models if name in known[m]}
        out[name] = (values, [m for m in models if m not in values])
    return out


def leave_one_model_out(features: np.ndarray, models: np.ndarray, factors: Mapping[str, Mapping[str, str]],
                        seed: int = 0) -> ParsingResult:
    """Predict each model's design factors from a classifier trained on the other models' samples only.

    ``features`` (n, d) are fingerprint features of generated samples, ``models`` (n,) names each sample's
    model and ``factors`` is ``{model: {factor: value}}``. A model without a factor is left out of that
    factor (and listed); a factor is evaluated when at least :data:`MIN_MODELS` models have it with two or
    more distinct values. The majority baseline predicts, for each held-out model, the value most frequent
    among the other models. A held-out model whose value no other model has counts as wrong for both and is
    flagged (``predictable=False``).
    """
    features, models = _check(features, models, factors)
    present = sorted(set(models.tolist()))
    results, left_out, skipped = {}, {}, {}
    for name, (values, lacking) in _factor_values(present, factors).items():
        left_out[name] = lacking
        distinct = set(values.values())
        if len(values) < MIN_MODELS or len(distinct) < 2:
            skipped[name] = (f"{len(values)} model(s) have it with {len(distinct)} distinct value(s); leave-one-"
                             f"model-out needs at least {MIN_MODELS} models and 2 values")
            continue
        rows, hits = [], []
        for held in sorted(values):
            others = {m: v for m, v in values.items() if m != held}
            classifier = _fit(features, models, others, seed)
            predicted, share, prob = _vote(classifier.proba(features[models == held]), classifier.values)
            truth = values[held]
            rows.append(ModelPrediction(held, truth, predicted, share, prob, truth in others.values()))
            hits.append(_baseline_hit(truth, list(others.values())))
        accuracy = float(np.mean([r.correct for r in rows]))
        results[name] = FactorParsing(name, accuracy, float(np.mean(hits)), tuple(rows))
        logger.info("model parsing of %s: leave-one-model-out accuracy %.3f, majority baseline %.3f over %d models",
                    name, accuracy, results[name].baseline, len(rows))
    return ParsingResult(results, left_out, skipped)


@dataclass
class FactorPredictor:
    """Classifiers of the design factors, fit on every model that has them, for samples of an unknown model.

    ``models`` lists, per factor, the models its classifier was fit on; ``skipped`` says why a factor
    has no classifier (fewer than two distinct values among the models).
    """

    classifiers: dict[str, _Classifier]
    models: dict[str, list[str]]
    skipped: dict[str, str] = field(default_factory=dict)
    dim: int = 0

    @classmethod
    def fit(cls, features: np.ndarray, models: np.ndarray, factors: Mapping[str, Mapping[str, str]],
            seed: int = 0) -> FactorPredictor:
        """One classifier per factor on the samples of the models that have it (every model weighing the same)."""
        features, models = _check(features, models, factors)
        classifiers, fitted, skipped = {}, {}, {}
        for name, (values, _) in _factor_values(sorted(set(models.tolist())), factors).items():
            if len(set(values.values())) < 2:
                skipped[name] = f"the {len(values)} model(s) that have it share one value"
                continue
            classifiers[name] = _fit(features, models, values, seed)
            fitted[name] = sorted(values)
        if not classifiers:
            raise InputError("no design factor has two distinct values among the models given; parsing needs "
                             "models of different designs (zoo models with model cards)")
        return cls(classifiers, fitted, skipped, features.shape[1])

    def _proba(self, features: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) == 0 or features.shape[1] != self.dim:
            raise InputError(f"features must be a non-empty (samples, {self.dim}) array, got shape {features.shape}")
        return features, {name: c.proba(features) for name, c in self.classifiers.items()}

    def predict(self, features: np.ndarray) -> dict[str, FactorGuess]:
        """For a batch of samples of one image set: per factor, the majority value over the rows (ties broken
        by the mean probability) and its mean probability."""
        _, proba = self._proba(features)
        guesses = {}
        for name, p in proba.items():
            value, _, prob = _vote(p, self.classifiers[name].values)
            guesses[name] = FactorGuess(value, prob)
        return guesses

    def predict_rows(self, features: np.ndarray) -> list[dict[str, FactorGuess]]:
        """Per sample: per factor, the most probable value and its probability."""
        features, proba = self._proba(features)
        rows: list[dict[str, FactorGuess]] = [{} for _ in range(len(features))]
        for name, p in proba.items():
            values, best = self.classifiers[name].values, p.argmax(axis=1)
            for i, row in enumerate(rows):
                row[name] = FactorGuess(str(values[best[i]]), float(p[i, best[i]]))
        return rows
