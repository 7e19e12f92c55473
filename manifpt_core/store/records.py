"""Typed records: what each step writes beside its output and what the next step (or a user) reads back.

Every stored output carries a :class:`Record` (Zarr attributes, or ``record.json``):
its fingerprint, content hash, inputs, settings and a step-specific *summary*.
The summary classes below are the one place where each field is named; steps
build them and read them as attributes, never by string key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from manifpt_core.errors import StoreError


class Summary:
    """Base of the typed summaries: plain dataclasses that round-trip through JSON."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """Build from stored JSON; keys a newer version added (or an older one dropped) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as err:
            raise StoreError(f"a stored {cls.__name__} lacks fields ({err}); the output predates this version "
                             "of manifpt: materialize it again") from err


S = TypeVar("S", bound=Summary)


@dataclass(frozen=True)
class Record(Generic[S]):
    """The provenance of one stored output, with its typed summary."""

    step: str
    version: str
    fingerprint: str
    content_hash: str
    inputs: dict[str, str]
    settings: dict[str, Any]
    summary: S

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "version": self.version, "fingerprint": self.fingerprint,
                "content_hash": self.content_hash, "inputs": dict(self.inputs), "settings": dict(self.settings),
                "summary": self.summary.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], summary_type: type[S]) -> Record[S]:
        try:
            return cls(data["step"], data["version"], data["fingerprint"], data["content_hash"],
                       dict(data.get("inputs", {})), dict(data.get("settings", {})),
                       summary_type.from_dict(data.get("summary", {})))
        except KeyError as err:
            raise StoreError(f"a stored record lacks {err}; materialize the output again") from err


@dataclass(frozen=True)
class ImagesSummary(Summary):
    """A source's image store (``images/<source>.zarr``) and manifest.

    For ``real``, rows ``0 .. n_reference`` are the reference set (the manifold estimate, the only thing indexed)
    and the rest the real class; a generative model has no reference rows. This is the one place that rule lives.
    """

    n_samples: int
    image_shape: list[int]
    manifest: str
    frechet_space: str
    n_reference: int = 0
    n_real_class: int = 0
    dropped_duplicates_of_reference: int = 0
    frechet_real_floor: float | None = None
    frechet_to_real: float | None = None
    # Files of a folder source or model folder that were not ingested, each {"path", "reason"}: links leaving the
    # folder, and with on_bad_image = "skip" the unreadable files.
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.image_shape
        return int(c), int(h), int(w)

    @property
    def query_start(self) -> int:
        """The first row that is a sample to attribute (after the reference rows)."""
        return self.n_reference

    @property
    def n_queries(self) -> int:
        return self.n_samples - self.n_reference


@dataclass(frozen=True)
class GeneratorSummary(Summary):
    """``generators/<model>/``: a trained zoo entry (``kind = "zoo"``) or an observed folder (``"folder"``)."""

    kind: str
    family: str | None = None
    image_shape: list[int] | None = None
    trained_on: int | None = None
    card: dict[str, Any] | None = None
    grid: str | None = None
    folder: str | None = None

    @property
    def factors(self) -> dict[str, str]:
        """The design factors of its model card (none for a folder)."""
        return dict((self.card or {}).get("factors", {}))


@dataclass(frozen=True)
class SpaceSummary(Summary):
    """``spaces/<space>/card.json``: the space's settings, and for a learned space its encoder."""

    space: dict[str, Any]
    fingerprint: str
    encoder: dict[str, Any] | None = None
    encoder_file: str | None = None
    encoder_sha256: str | None = None
    feature_dim: int | None = None


@dataclass(frozen=True)
class EmbeddingsSummary(Summary):
    """``embeddings/<space>/<source>.zarr``: float32 (n_samples, dim)."""

    n_samples: int
    dim: int
    space: str
    device: str
    derived: bool = False  # pixel-like, above derive_above_gb: computed on read from the images, not stored


@dataclass(frozen=True)
class IndexSummary(Summary):
    """``index/<space>/``: the index file and its card."""

    space: str
    dim: int
    n: int
    kind: str
    search: dict[str, Any]
    fingerprint: str
    recall: dict[str, Any] | None = None


@dataclass(frozen=True)
class ArtifactsSummary(Summary):
    """``artifacts/<space>/<source>.zarr``: one row per query sample, every artifact kind."""

    n_queries: int
    dim: int
    n_reference: int
    kinds: list[str]
    mean_nn_dist: float
    search_engine: str
    index_kind: str
    recall: dict[str, Any] | None = None
    knn_k: int | None = None
    mean_knn_dist: float | None = None
    derived: bool = False  # the (n, D) artifacts are derived on read from the images (manifpt_core.store.derived)

    ARRAYS: ClassVar[dict[str, str]] = {"nearest": "artifact", "knn": "knn_artifact"}


@dataclass(frozen=True)
class SeedResult(Summary):
    """One seed's attributor (or baseline classifier) on the test split."""

    seed: int
    test_accuracy: float
    fdr: float
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    history: list[dict[str, Any]] | None = None


# Score names stored before the open-set scores were named as in manifpt_core.metrics.openset.
LEGACY_SCORES = {"1 - max softmax": "max_softmax", "max softmax (mean over seeds)": "max_softmax"}


@dataclass(frozen=True)
class OpenSetRow(Summary):
    """One generative model left out of an attributor's training: per open-set score (known-ness, higher is more
    likely known; manifpt_core.metrics.openset), the AUROC of telling its test samples from the known classes'
    and the share of them rejected at the operating point (the threshold accepting ``accept`` of the known
    validation images of the attributor trained without it)."""

    held_out: str
    n_known: int
    n_unknown: int
    auroc: dict[str, float]
    rejected: dict[str, float]
    threshold: dict[str, float]


@dataclass(frozen=True)
class OpenSetResult(Summary):
    """An attributor's open-set evaluation: one row per left-out model, the mean and std of each score's AUROC
    and rejection rate over them, and ``chosen``, the score with the higher mean AUROC, which queries use."""

    scores: list[str]
    chosen: str
    seeds: list[int]
    accept: float | None  # None in a result stored by attributor version 4 (no operating point per row)
    rows: list[OpenSetRow]
    auroc_mean: dict[str, float]
    auroc_std: dict[str, float | None]
    rejected_mean: dict[str, float]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenSetResult:
        data = dict(data)
        if "held_out" in data:  # the one-model shape of attributor version 4: max softmax, the first seed
            try:
                auroc, score = data["auroc"], LEGACY_SCORES.get(data["score"], data["score"])
                row = OpenSetRow(held_out=data["held_out"], n_known=data["n_known"], n_unknown=data["n_unknown"],
                                 auroc={score: auroc}, rejected={}, threshold={})
            except KeyError as err:
                raise StoreError(f"a stored open-set result lacks {err}; materialize the attributor again") from err
            return cls(scores=[score], chosen=score, seeds=[data["seed"]], accept=None, rows=[row],
                       auroc_mean={score: auroc}, auroc_std={score: None}, rejected_mean={})
        data["rows"] = [OpenSetRow.from_dict(r) for r in data.get("rows", [])]
        return super().from_dict(data)


@dataclass(frozen=True)
class OperatingPoint(Summary):
    """The open-set threshold of an attributor: a query whose known-ness ``score`` (a name of
    manifpt_core.metrics.openset.SCORES, computed from every seed's network) is below ``threshold`` is
    ``unknown``. Calibrated on the full attributor so that ``accept`` of the known validation images pass."""

    score: str
    accept: float
    threshold: float
    n_val: int
    test_accepted: float  # the share of the (known) test images that pass: the operating point, measured

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperatingPoint:
        data = dict(data)
        data["score"] = LEGACY_SCORES.get(data.get("score"), data.get("score"))
        return super().from_dict(data)


@dataclass(frozen=True)
class TrainingInfo(Summary):
    """How an attributor got its classes (``attribution.retrain``): ``full``, trained from scratch on them, or
    ``enrolled``, its network trained in full on ``trunk_classes`` at ``trained_at`` and the models of
    ``enrolled`` added since as new output classes on its frozen features (the last at ``enrolled_at``)."""

    mode: str  # "full" or "enrolled"
    trained_at: str  # ISO 8601 UTC: when the network below the head was trained
    trunk_classes: list[str]
    enrolled: list[str]  # models enrolled since the full training (and still registered), in order
    enrolled_at: str | None = None  # ISO 8601 UTC: the last enrollment
    removed: list[str] | None = None  # models of trunk_classes whose rows were dropped since


@dataclass(frozen=True)
class AttributorMetrics(Summary):
    """``attributors/<method>/metrics.json`` or ``baselines/<name>/metrics.json``: test metrics over seeds."""

    method: str
    network: str
    classes: list[str]
    n_train: int
    n_val: int
    n_test: int
    seeds: list[int]
    accuracy_mean: float
    accuracy_std: float | None
    fdr_mean: float
    fdr_std: float | None
    per_class_accuracy: dict[str, float]
    per_seed: list[SeedResult]
    confusion: list[list[int]]
    confusion_png: str | None  # None: no figures (the robustness step's twins)
    per_class_png: str | None
    open_set: OpenSetResult | None = None
    features_file: str | None = None  # penultimate test features of the first seed (attributors only)
    label: str | None = None  # baselines: the report's row label
    parameters: dict[str, Any] | None = None  # baselines: the settings it read
    feature_shape: list[int] | None = None  # baselines: the classifier's input shape
    operating_point: OperatingPoint | None = None  # attributors and the control: the open-set threshold
    training: TrainingInfo | None = None  # attributors and the control: full training or enrollment, and when

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributorMetrics:
        data = dict(data)
        data["per_seed"] = [SeedResult.from_dict(s) for s in data.get("per_seed", [])]
        if data.get("open_set") is not None:
            data["open_set"] = OpenSetResult.from_dict(data["open_set"])
        if data.get("operating_point") is not None:
            data["operating_point"] = OperatingPoint.from_dict(data["operating_point"])
        if data.get("training") is not None:
            data["training"] = TrainingInfo.from_dict(data["training"])
        return super().from_dict(data)


@dataclass(frozen=True)
class MethodsSummary(Summary):
    """Several attributors materialized together (one space's artifact kinds): each method's headline numbers."""

    methods: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.methods)  # flat: one metadata entry per method


@dataclass(frozen=True)
class ReportRow(Summary):
    """One row of the report's main table: a method's accuracy and FDR over seeds, and its figures."""

    method: str  # the label shown
    key: str  # the method's canonical name (names.Method)
    space: str | None
    kind: str | None
    network: str
    accuracy_mean: float
    accuracy_std: float | None
    fdr_mean: float
    fdr_std: float | None
    seeds: list[int]
    n_test: int
    per_seed: list[float]
    per_class_accuracy: dict[str, float]
    open_set: OpenSetResult | None
    confusion: list[list[int]]
    figure: str
    per_class_figure: str
    training: TrainingInfo | None = None  # attributors and the control: trained in full or enrolled, and when

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportRow:
        data = dict(data)
        if data.get("open_set") is not None:
            data["open_set"] = OpenSetResult.from_dict(data["open_set"])
        if data.get("operating_point") is not None:
            data["operating_point"] = OperatingPoint.from_dict(data["operating_point"])
        if data.get("training") is not None:
            data["training"] = TrainingInfo.from_dict(data["training"])
        return super().from_dict(data)


@dataclass(frozen=True)
class NMIResult(Summary):
    """The report's NMI of each method's fingerprint features with each design factor, and who was left out.

    ``methods[method][factor]``: the NMI over the samples of the models that give the factor; None when fewer
    than two models give it, or they all share one value. ``left_out[model]``: the factors the model does not
    give, so its samples were left out of them (every factor when it gives none: a model folder without a
    ``card.json``).
    """

    methods: dict[str, dict[str, float | None]]
    left_out: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Report(Summary):
    """``reports/report.json``: everything the report shows."""

    dataset: str
    profile: str
    classes: list[str]
    chance_accuracy: float
    samples: dict[str, int]
    main_table: list[ReportRow]
    nmi: NMIResult | None
    tsne: dict[str, str]
    spaces: list[dict[str, Any]]
    sample_grids: dict[str, str]
    generators: list[dict[str, Any]]
    frechet_space: str
    frechet_real_floor: float
    inputs: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    robustness: dict[str, Any] | None = None  # robustness/robustness.json, as RobustnessSummary.to_dict()
    parsing: dict[str, Any] | None = None  # model parsing per method (manifpt_core.steps.parsing)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        data = dict(data)
        data["main_table"] = [ReportRow.from_dict(r) for r in data.get("main_table", [])]
        if data.get("nmi") is not None:
            data["nmi"] = NMIResult.from_dict(data["nmi"])
        return super().from_dict(data)


@dataclass(frozen=True)
class ReportSummary(Summary):
    """The report step's record summary: the report's path and its headline numbers."""

    main_table: list[dict[str, Any]]
    open_set: list[dict[str, Any]]
    nmi: NMIResult | None
    tsne: dict[str, str]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportSummary:
        data = dict(data)
        if data.get("nmi") is not None:
            data["nmi"] = NMIResult.from_dict(data["nmi"])
        return super().from_dict(data)


@dataclass(frozen=True)
class RobustnessSummary(Summary):
    """``robustness/robustness.json``: every method's test accuracy on the clean test images and on each
    post-processed copy of them (``conditions``: "clean", then the perturbations, each seeded as
    ``perturbation_seeds`` says). A row is {"method", "label", "group" (attributor, control, baseline or twin),
    "augment" (its attributor.augment; None for a baseline), "accuracy": {condition: {"per_seed", "mean", "std",
    "drop"}}}, ``drop`` being the clean mean minus the condition's mean."""

    dataset: str
    classes: list[str]
    seeds: list[int]
    n_test: int
    conditions: list[str]
    perturbation_seeds: dict[str, int]
    changed_share: dict[str, float]  # per perturbation, the share of test images whose pixels it changed
    rows: list[dict[str, Any]]
    figure: str


@dataclass(frozen=True)
class CrossSummary(Summary):
    """``cross_dataset/``: every ordered pair of datasets and method."""

    datasets: list[str]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class FeatureTableSummary(Summary):
    """``features/``: ``samples.parquet`` (one row a stored sample) and ``predictions.parquet`` (one row a test
    sample, method and seed)."""

    n_samples: int
    n_predictions: int
    spaces: list[str]
    methods: list[str]
    classes: list[str]
    columns: list[str]
    accuracy: dict[str, float]  # per method, the mean over seeds of the test accuracy (as the report's)


@dataclass(frozen=True)
class QuerySetSummary(Summary):
    """A query set's ``attribution.parquet``: its images attributed in every dataset."""

    name: str
    n_images: int
    n_failed: int
    datasets: list[str]
    methods: list[str]
    result: str
    unknown_share: dict[str, float]  # per dataset and method ("dataset/method"), the share judged unknown
    predicted: dict[str, dict[str, int]]  # per "dataset/method", how many images each source was named for
