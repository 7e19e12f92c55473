"""Attributing new images with what a dataset's store holds: its encoders, indexes and trained attributors.

Nothing is retrained or re-embedded: an image is embedded in every space with the
stored encoder, its nearest real reference points are found in the stored index,
its artifacts of every kind are computed exactly as the artifact step computes
them, and every stored attributor (each seed; the probabilities averaged) and the
raw-image control name its source. The open-set verdict compares the attributor's
chosen open-set score (a known-ness, manifpt_core.metrics.openset: the averaged
maximum probability, or the seeds' mean Mahalanobis distance of the features to the
nearest known class) with its recorded operating point.

    engine = QueryEngine(store, settings)          # loads encoders, indexes, networks (once)
    answers = engine.attribute(read_query_images(paths, engine.shape, store.dataset))
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from manifpt_core.artifacts import artifacts_of_block
from manifpt_core.attribution import Predictor, softmax
from manifpt_core.config import Settings
from manifpt_core.errors import InputError
from manifpt_core.metrics.openset import MAX_SOFTMAX, ClassStatistics
from manifpt_core.metrics.parsing import FactorPredictor
from manifpt_core.names import Method
from manifpt_core.query.images import QueryImage
from manifpt_core.steps.attribute import CONTROL, seed_networks
from manifpt_core.steps.augment import method_inputs
from manifpt_core.steps.index import open_searcher
from manifpt_core.steps.open_set import knownness, seed_class_statistics
from manifpt_core.steps.parsing import factor_predictor, factors_of_models
from manifpt_core.steps.space import Embedder, open_space
from manifpt_core.store import Store
from manifpt_core.store.records import AttributorMetrics
from manifpt_core.torch_helpers import resolve_device
from manifpt_core.zoo.cards import DESIGN_FACTORS

logger = logging.getLogger(__name__)

TOP = 3  # how many sources each answer ranks
KNOWN, UNKNOWN = "known", "unknown"


@dataclass(frozen=True)
class NearestReal:
    """An image's nearest real reference sample in one space."""

    space: str
    id: int  # the reference row (its FAISS id and its row in the real manifest)
    sample_id: str
    path: str
    distance: float


@dataclass(frozen=True)
class MethodAnswer:
    """What one method (an attributor or the control) says of one image."""

    method: str
    space: str | None
    predicted: str
    probability: float
    top: list[tuple[str, float]]
    verdict: str  # "known", or "unknown" when the score is below the operating point's threshold
    score: float  # the open-set known-ness in (0, 1], higher is more likely known
    score_name: str  # which open-set score (manifpt_core.metrics.openset.SCORES)
    threshold: float | None
    accept: float | None
    seed_predictions: list[str]
    # For an image judged unknown: each design factor's most probable value and its probability, from classifiers
    # fit on the attributed models' fingerprint features (model parsing); None when known, or when fewer than two
    # attributed models of different designs give design factors.
    factors: dict[str, tuple[str, float]] | None = None


@dataclass(frozen=True)
class ImageAnswer:
    """Everything a query says of one image in one dataset; ``error`` set when the image was refused."""

    image: str
    dataset: str
    error: str | None = None
    resize: dict | None = None
    nearest_real: list[NearestReal] = field(default_factory=list)
    methods: list[MethodAnswer] = field(default_factory=list)


@dataclass
class _Method:
    method: Method
    metrics: AttributorMetrics
    networks: list[tuple[int, Predictor]]  # each seed's network, built once on the engine's device
    statistics: list[ClassStatistics] | None  # each seed's class statistics, when its open-set score needs them

    @property
    def score_name(self) -> str:
        """The open-set score its operating point uses (max softmax for an attributor stored without one)."""
        point = self.metrics.operating_point
        return point.score if point else MAX_SOFTMAX


@dataclass
class BatchOutputs:
    """The raw numbers of one batch: per space the search and artifact arrays, per method each seed's
    probabilities (seeds, n, classes) and its open-set score (n,)."""

    arrays: dict[str, dict[str, np.ndarray]]
    probabilities: dict[str, np.ndarray]
    open_set_scores: dict[str, np.ndarray]
    features: dict[str, np.ndarray]  # per method, the first seed's penultimate features (n, D)


def default_methods(settings: Settings) -> list[Method]:
    """Every attributor of the settings (one per space and artifact kind), then the raw-image control."""
    return [*settings.methods, CONTROL]


def check_methods(settings: Settings, methods: Sequence[Method | str]) -> list[Method]:
    """Methods named by canonical strings or Method values, each one the settings train."""
    valid = default_methods(settings)
    out = []
    for m in methods:
        method = Method.parse(m) if isinstance(m, str) else m
        if method not in valid:
            raise InputError(f"method {str(method)!r} is not attributed in dataset {settings.dataset!r}; "
                             f"valid methods: {', '.join(str(v) for v in valid)}")
        out.append(method)
    return out


class QueryEngine:
    """A dataset's stored encoders, indexes and attributors, loaded once, to attribute images."""

    def __init__(self, store: Store, settings: Settings, methods: Sequence[Method | str] | None = None,
                 device: str | None = None) -> None:
        if store.dataset != settings.dataset:
            raise InputError(f"the store is of dataset {store.dataset!r} but the settings are of "
                             f"{settings.dataset!r}")
        self.store, self.settings = store, settings
        self.device = resolve_device(device or settings.device)
        real = store.real
        self.shape: tuple[int, int, int] = real.summary.shape
        self.methods = []
        for m in check_methods(settings, methods) if methods else default_methods(settings):
            metrics, networks = seed_networks(store, m)
            self.methods.append(_Method(m, metrics, [(seed, Predictor(net, self.device)) for seed, net in networks],
                                        seed_class_statistics(store, m, metrics)))
        self.spaces: dict[str, tuple[Embedder, object]] = {
            space: (open_space(store, space, self.device), open_searcher(store, settings, space))
            for space in settings.spaces}
        reference = real.manifest(["sample_id", "path"]).slice(0, real.n_reference)
        self._factor_predictors: dict[str, FactorPredictor | None] = {}
        self._ref_ids = reference.column("sample_id").to_pylist()
        self._ref_paths = reference.column("path").to_pylist()
        logger.info("query engine for %s: %d spaces, %d methods on %s", store.dataset, len(self.spaces),
                    len(self.methods), self.device)

    @property
    def method_names(self) -> list[str]:
        return [str(m.method) for m in self.methods]

    def compute(self, images: np.ndarray) -> BatchOutputs:
        """Search, artifacts, every seed's class probabilities and each method's open-set score of uint8 images
        (n, C, H, W)."""
        if images.ndim != 4 or tuple(images.shape[1:]) != self.shape or images.dtype != np.uint8:
            raise InputError(f"expected uint8 images of shape (n, {', '.join(map(str, self.shape))}) for dataset "
                             f"{self.store.dataset!r}, got {images.dtype} {images.shape}")
        a = self.settings.artifacts
        arrays = {}
        for space, (embedder, searcher) in self.spaces.items():
            vectors = np.ascontiguousarray(embedder.embed(images), dtype=np.float32)
            arrays[space] = artifacts_of_block(searcher, vectors, a.kinds, a.knn_k, a.knn_reg)
        probabilities, scores, features = {}, {}, {}
        for m in self.methods:
            x = method_inputs(m.method, images, arrays, self.shape)
            outputs = [net.logits(x, return_features=True) for _, net in m.networks]
            probs = np.stack([softmax(logits) for logits, _ in outputs])
            probabilities[str(m.method)] = probs
            scores[str(m.method)] = knownness(m.score_name, probs, [f for _, f in outputs], m.statistics)
            features[str(m.method)] = outputs[0][1]
        return BatchOutputs(arrays, probabilities, scores, features)

    def attribute(self, queries: Sequence[QueryImage], block: int | None = None) -> list[ImageAnswer]:
        """One answer per query image, in order; an image that could not be read keeps its error."""
        good = [i for i, q in enumerate(queries) if q.ok]
        answers: dict[int, ImageAnswer] = {}
        step = block or self.settings.block_rows
        for start in range(0, len(good), step):
            rows = good[start : start + step]
            out = self.compute(np.stack([queries[i].pixels for i in rows]))
            for j, i in enumerate(rows):
                answers[i] = self._answer(queries[i], out, j)
        return [answers.get(i) or ImageAnswer(q.path, self.store.dataset, error=q.error,
                                              resize=q.resize.to_dict() if q.resize else None)
                for i, q in enumerate(queries)]

    def _answer(self, query: QueryImage, out: BatchOutputs, j: int) -> ImageAnswer:
        nearest = []
        for space, arrays in out.arrays.items():
            ref = int(arrays["nn_id"][j])
            nearest.append(NearestReal(space, ref, self._ref_ids[ref], self._ref_paths[ref],
                                       float(arrays["nn_dist"][j])))
        answers = []
        for m in self.methods:
            answer = self._method_answer(m, out.probabilities[str(m.method)][:, j],
                                         float(out.open_set_scores[str(m.method)][j]))
            if answer.verdict == UNKNOWN:
                answer = dataclasses.replace(answer, factors=self._design_factors(m, out.features[str(m.method)][j]))
            answers.append(answer)
        return ImageAnswer(query.path, self.store.dataset, None, query.resize.to_dict() if query.resize else None,
                           nearest, answers)

    def _design_factors(self, m: _Method, features: np.ndarray) -> dict[str, tuple[str, float]] | None:
        """The design factors an unknown image's features point to, by the method's factor classifiers (fit on
        first use, on the stored test features of every attributed model that gives design factors)."""
        key = str(m.method)
        if key not in self._factor_predictors:
            classes = m.metrics.classes
            factors = factors_of_models(self.store, classes[1:])
            varied = any(len({f[name] for f in factors.values() if f and name in f}) >= 2 for name in DESIGN_FACTORS)
            self._factor_predictors[key] = (factor_predictor(self.store, m.method, classes, factors,
                                                             seed=self.settings.data_seed) if varied else None)
            if varied:
                logger.info("design-factor classifiers of %s: fit on %s", key, self._factor_predictors[key].models)
        predictor = self._factor_predictors[key]
        if predictor is None:
            return None
        (row,) = predictor.predict_rows(features[None])
        return {name: (guess.value, guess.confidence) for name, guess in row.items()}

    @staticmethod
    def _method_answer(m: _Method, seed_probs: np.ndarray, score: float) -> MethodAnswer:
        """One method's answer from its seeds' probabilities (seeds, classes) and its open-set score."""
        classes = m.metrics.classes
        mean = seed_probs.mean(axis=0)
        order = np.argsort(-mean, kind="stable")[:TOP]
        point = m.metrics.operating_point
        threshold = point.threshold if point else None
        verdict = KNOWN if threshold is None or score >= threshold else UNKNOWN
        return MethodAnswer(method=str(m.method), space=m.method.space, predicted=classes[int(order[0])],
                            probability=float(mean[order[0]]), top=[(classes[int(k)], float(mean[k])) for k in order],
                            verdict=verdict, score=score, score_name=m.score_name, threshold=threshold,
                            accept=point.accept if point else None,
                            seed_predictions=[classes[int(k)] for k in seed_probs.argmax(axis=1)])
