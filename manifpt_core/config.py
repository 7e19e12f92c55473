"""Pipeline settings: frozen dataclasses built from a named profile plus an optional TOML file.

Every value is checked once, by :func:`manifpt_core.settings_loader.load`, against its
field's type and declared range; unknown keys are an error that lists the valid ones,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifpt_core.artifacts import KINDS as ARTIFACT_KINDS
from manifpt_core.attribution import FitSettings
from manifpt_core.baselines import BaselineSettings
from manifpt_core.cluster.settings import ClusterSettings
from manifpt_core.encoders import EncoderSettings
from manifpt_core.errors import InputError
from manifpt_core.names import Method, check_model_name, check_name
from manifpt_core.search import SearchSettings
from manifpt_core.settings_loader import Label, load, load_rules, positive, setting
from manifpt_core.spaces import get_space
from manifpt_core.zoo import ModelCard

SOURCE_KINDS = ("fashion_mnist", "folder")
REMOVED_MODELS = ("keep", "delete")
DEVICES = ("auto", "cpu", "cuda")
BAD_IMAGE_POLICIES = ("error", "skip")


@dataclass(frozen=True)
class ChecksSettings:
    """Bounds of the Dagster asset checks (docs/reliability.md): ``min_index_recall``: the recall at 1 an
    approximate index must reach against exact search on the check's sample of queries; ``max_fid_ratio``: a
    trained generator's Fréchet distance to the real images, at most this multiple of the real-vs-real score."""

    min_index_recall: float = setting(0.9, ge=0, le=1)
    max_fid_ratio: float = setting(20.0, gt=0)


# Post-processing applied to test images before they are embedded, for the robustness table (manifpt_core/perturb.py).
PERTURBATION_NAMES = ("jpeg90", "jpeg75", "jpeg50", "resize0.5", "blur1", "noise2")


@dataclass(frozen=True)
class RobustnessSettings:
    """The robustness evaluation (docs/robustness.md): ``perturbations`` applied to every method's test images
    (seeded by ``seed``); ``compare_augment``: also train each artifact attributor with the other
    ``attributor.augment`` setting, so the table shows the augmentation's effect."""

    perturbations: tuple[str, ...] = PERTURBATION_NAMES
    seed: int = setting(0, ge=0)
    compare_augment: bool = True

    def __post_init__(self) -> None:
        bad = [p for p in self.perturbations if p not in PERTURBATION_NAMES]
        if bad or len(set(self.perturbations)) != len(self.perturbations):
            raise InputError(f"robustness.perturbations = {list(self.perturbations)}: list distinct names among "
                             f"{list(PERTURBATION_NAMES)} (an empty list turns the robustness table off)")


RETRAIN_CHOICES = ("enroll", "full")


@dataclass(frozen=True)
class AttributionSettings:
    """How attributors follow the set of generative models (docs/configuration.md). ``retrain``: ``enroll``
    adds a new model as a new output class on the stored attributor's frozen features (only the head's new rows
    are trained; the old rows are kept) and drops a removed model's row; ``full`` trains every attributor from
    scratch on all models. A store without an attributor to start from always trains in full.
    ``full_retrain_cron``: when the full-retrain schedule runs (it is off until turned on in the UI)."""

    retrain: str = "enroll"
    full_retrain_cron: str = "0 3 * * 0"

    def __post_init__(self) -> None:
        if self.retrain not in RETRAIN_CHOICES:
            raise InputError(f"attribution.retrain = {self.retrain!r} is not one of {list(RETRAIN_CHOICES)}")
        if len(self.full_retrain_cron.split()) != 5:
            raise InputError(f"attribution.full_retrain_cron = {self.full_retrain_cron!r} is not a cron expression "
                             "of five fields, e.g. '0 3 * * 0' (Sundays at 03:00)")


@dataclass(frozen=True)
class SourceSettings:
    """Where the real images (and, for ``folder``, the generated ones) come from.

    ``fashion_mnist``: idx files in ``path`` (default: the Debian package's directory).
    ``folder``: a GM-CIFAR10-style root, ``<path>/real/`` plus one folder per model.
    ``resize`` ([H, W]) with ``resize_filter`` is applied to every image when set.
    ``classes`` (Fashion-MNIST only) keeps the images of these labels, e.g. a semantic subset.
    """

    kind: str = "fashion_mnist"
    path: str | None = None
    resize: tuple[int, int] | None = positive(None)
    resize_filter: str = "bicubic"
    classes: tuple[int, ...] | None = setting(None, ge=0, le=9)

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise InputError(f"source.kind = {self.kind!r} is not one of {SOURCE_KINDS}")
        if self.kind == "folder" and not self.path:
            raise InputError("source.kind = 'folder' needs source.path: the folder holding real/ and one folder per model")
        if self.classes is not None:
            if self.kind != "fashion_mnist":
                raise InputError("source.classes selects Fashion-MNIST labels; remove it for a folder source")
            # Sorted, so that the same subset written in another order is the same dataset.
            classes = tuple(sorted(self.classes))
            if not classes or len(set(classes)) != len(classes):
                raise InputError(f"source.classes = {list(self.classes)} must list distinct labels in 0..9")
            object.__setattr__(self, "classes", classes)


def _encoder_settings(space: str) -> Callable[..., EncoderSettings]:
    def build(data: Mapping[str, Any], **origin: Any) -> EncoderSettings:
        return EncoderSettings.from_dict(space, data, **origin)

    return build


@dataclass(frozen=True)
class Encoders:
    """How the learned spaces get their encoder: ``encoders.sl`` and ``encoders.ssl``."""

    # Built by EncoderSettings.from_dict, whose own errors name the space (encoders.sl.steps).
    sl: EncoderSettings = field(default_factory=EncoderSettings, metadata=load_rules(build=_encoder_settings("sl")))
    ssl: EncoderSettings = field(default_factory=EncoderSettings, metadata=load_rules(build=_encoder_settings("ssl")))

    def for_space(self, space: str) -> EncoderSettings:
        return getattr(self, space)


@dataclass(frozen=True)
class ArtifactSettings:
    """Which estimates of x* make artifacts: ``nearest`` (the nearest reference point, the paper's)
    and ``knn`` (the projection onto the affine span of the ``knn_k`` nearest, ridge ``knn_reg``)."""

    kinds: tuple[str, ...] = ("nearest",)
    knn_k: int = setting(8, ge=2)  # a patch needs two points
    knn_reg: float = setting(1e-3, ge=0)

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in ARTIFACT_KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise InputError(f"artifacts.kinds = {list(self.kinds)}: list distinct kinds among {list(ARTIFACT_KINDS)}")

    def settings(self) -> dict[str, Any]:
        return {"kinds": list(self.kinds), "knn_k": self.knn_k, "knn_reg": self.knn_reg}

    @property
    def neighbours(self) -> int:
        """How many nearest reference points the artifact step needs per query."""
        return self.knn_k if "knn" in self.kinds else 1


@dataclass(frozen=True)
class Settings:
    """Everything that shapes a pipeline run. See docs/configuration.md for each key."""

    profile: str
    dataset: str = "fashion_mnist"
    source: SourceSettings = field(default_factory=SourceSettings)
    n_reference: int = positive(10000)
    n_real_class: int = positive(2000)
    n_per_model: int = positive(2000)
    spaces: tuple[str, ...] = ("rgb", "freq", "sl", "ssl")
    encoders: Encoders = field(default_factory=Encoders)
    search: SearchSettings = field(default_factory=SearchSettings)
    artifacts: ArtifactSettings = field(default_factory=ArtifactSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)  # where the heavy blockwise work runs
    # Built by ModelCard.from_dict: a short entry takes its family's factors and training settings.
    zoo: tuple[ModelCard, ...] = field(default=(), metadata=load_rules(build=ModelCard.from_dict))
    attributor: FitSettings = field(default_factory=FitSettings)
    baselines: BaselineSettings = field(default_factory=BaselineSettings)
    seeds: tuple[int, ...] = setting((0,), ge=0)
    # Open set (docs/configuration.md): "each" leaves every generative model out in turn, "auto" the last by name,
    # a model name that model; "none" skips it. Each left-out attributor trains with the first open_set_seeds seeds.
    open_set_holdout: str = "each"
    open_set_seeds: int = setting(1, ge=1)
    # The open-set operating point: the share of known validation images a query accepts (docs/querying.md).
    open_set_accept: float = setting(0.95, gt=0, le=1)
    # A folder of model folders beside any real source: each subfolder is a generative model's samples.
    models_path: str | None = None
    removed_models: str = "keep"  # a model whose folder or zoo entry is gone: keep or delete its stored data
    # With removed_models = "delete": a model's data is deleted only once its folder or entry has been missing
    # for this many discovery checks and minutes, and no run is reading it.
    removal_grace_checks: int = setting(2, ge=1)
    removal_grace_minutes: float = setting(10.0, ge=0)
    # A file in a folder source or model folder that is not a readable image: fail the step ("error"), or ingest
    # the rest and record each skipped file and its reason ("skip").
    on_bad_image: str = "error"
    # Symbolic links under a folder source or the models folder that lead outside it are refused unless true.
    follow_symlinks: bool = False
    checks: ChecksSettings = field(default_factory=ChecksSettings)
    robustness: RobustnessSettings = field(default_factory=RobustnessSettings)
    attribution: AttributionSettings = field(default_factory=AttributionSettings)
    # Pixel-like spaces (rgb, freq): an array of one source in one space larger than this (GB of float32) is not
    # stored but derived on read from the images: its embeddings, and its artifacts from the neighbours (scale.md).
    derive_above_gb: float = setting(4.0, ge=0)
    data_seed: int = setting(0, ge=0)
    chunk_rows: int = positive(1024)
    block_rows: int = positive(4096)
    device: str = "auto"

    def __post_init__(self) -> None:
        check_name("dataset", self.dataset)
        for space in self.spaces:
            get_space(space)
        if len(set(self.spaces)) != len(self.spaces):
            raise InputError(f"spaces lists a space twice: {list(self.spaces)}")
        names = [card.name for card in self.zoo]
        if len(set(names)) != len(names):
            raise InputError(f"zoo lists a model name twice: {names}")
        for name in names:
            check_model_name(name, f"zoo entry {name!r}")
        if not self.seeds:
            raise InputError("seeds must list at least one attributor seed")
        if self.removed_models not in REMOVED_MODELS:
            raise InputError(f"removed_models = {self.removed_models!r} is not one of {REMOVED_MODELS}")
        if self.on_bad_image not in BAD_IMAGE_POLICIES:
            raise InputError(f"on_bad_image = {self.on_bad_image!r} is not one of {BAD_IMAGE_POLICIES}")
        if self.device not in DEVICES:
            raise InputError(f"device = {self.device!r} is not one of {DEVICES}")
        if self.models_path is not None and not self.models_path.strip():
            raise InputError(f"models_path = {self.models_path!r} names no folder; give the folder that holds one "
                             "folder of images per model, or remove the key")

    @property
    def methods(self) -> tuple[Method, ...]:
        """Every attributor over artifacts: one per space and artifact kind, spaces first."""
        return tuple(Method.artifacts(space, kind) for space in self.spaces for kind in self.artifacts.kinds)

    def derives(self, space: str, n: int, dim: int, arrays: int = 1) -> bool:
        """Whether ``arrays`` (n, dim) float32 arrays of one source in ``space`` are derived on read, not stored:
        only in a pixel-like space, and only above ``derive_above_gb``."""
        pixel_like = get_space(space).image_shaped and not get_space(space).learned
        return pixel_like and n * dim * 4 * arrays / 1e9 > self.derive_above_gb

    def card(self, model: str) -> ModelCard | None:
        """The zoo card named ``model``, or None when the model is a folder of images."""
        return next((c for c in self.zoo if c.name == model), None)


# One entry per family, plus a second seed of one architecture (for seed-level attribution).
_DEMO_ZOO = [
    {"name": "dcgan", "family": "dcgan", "seed": 0},
    {"name": "dcgan-s1", "family": "dcgan", "seed": 1},
    {"name": "lsgan", "family": "lsgan", "seed": 0},
    {"name": "wgan-gp", "family": "wgan_gp", "seed": 0},
    {"name": "vae", "family": "vae", "seed": 0},
    {"name": "beta-vae", "family": "beta_vae", "seed": 0},
    {"name": "realnvp", "family": "realnvp", "seed": 0},
    {"name": "ddpm", "family": "ddpm", "seed": 0},
]

# Two real datasets of one image format, for cross-dataset experiments: Fashion-MNIST split by
# semantics into clothing and footwear + bags (docs/decisions.md says why).
FASHION_MNIST_SPLIT = [
    {"dataset": "fmnist_clothing", "source": {"kind": "fashion_mnist", "classes": [0, 1, 2, 3, 4, 6]}},
    {"dataset": "fmnist_footwear_bags", "source": {"kind": "fashion_mnist", "classes": [5, 7, 8, 9]}},
]

# Short tags of the factorial profile's factor values, for its model names (e.g. up-tconv_loss-ns_norm-bn).
_FACTORIAL_UPSAMPLING = {"transposed_conv": "tconv", "nearest_conv": "nearest", "bilinear_conv": "bilinear",
                         "pixel_shuffle": "pshuffle"}
_FACTORIAL_LOSS = {"non_saturating": "ns", "least_squares": "ls", "hinge": "hinge", "wasserstein_gp": "wgp"}
_FACTORIAL_NORMALIZATION = {"batch": "bn", "layer": "ln"}


def _factorial_zoo(steps: int) -> list[dict[str, Any]]:
    """Cards of the ``gan`` family over the full upsampling x loss grid (16 models), ``steps`` training steps each.

    The generator's normalization alternates like a chessboard: batch where the upsampling's and the loss's
    indices sum to an even number, layer where odd. Each normalization then meets every upsampling and every
    loss equally often (twice), so no factor is confounded with another and NMI can be read per factor.
    """
    norms = list(_FACTORIAL_NORMALIZATION)
    zoo = []
    for i, (upsampling, up_tag) in enumerate(_FACTORIAL_UPSAMPLING.items()):
        for j, (loss, loss_tag) in enumerate(_FACTORIAL_LOSS.items()):
            norm = norms[(i + j) % 2]
            zoo.append({"name": f"up-{up_tag}_loss-{loss_tag}_norm-{_FACTORIAL_NORMALIZATION[norm]}", "family": "gan",
                        "seed": 0, "factors": {"upsampling": upsampling, "loss": loss, "normalization": norm},
                        "train": {"steps": steps}})
    return zoo


PROFILES: dict[str, dict[str, Any]] = {
    # Sized for a 2-core CPU: the README's first command.
    "demo": {
        "n_reference": 10000,
        "n_real_class": 1000,
        "n_per_model": 1000,
        "zoo": _DEMO_ZOO,
        # One-cycle learning rate over 6 epochs: the accuracy of 10 epochs at a constant rate, or better, with a
        # far smaller spread over seeds, in 0.6 of the time (benchmarks/bench_training.py; docs/decisions.md).
        "attributor": {"epochs": 6, "patience": 3, "lr": 3e-3, "schedule": "onecycle"},
        "artifacts": {"kinds": ["nearest", "knn"]},
        "baselines": {"nataraj_levels": 32},
        "seeds": [0, 1, 2],
        "datasets": FASHION_MNIST_SPLIT,
    },
    # Small enough for the test suite: every step runs, in seconds.
    "tiny": {
        "n_reference": 600,
        "n_real_class": 160,
        "n_per_model": 160,
        "zoo": [
            {"name": "dcgan", "family": "dcgan", "seed": 0, "train": {"steps": 20, "batch_size": 32}},
            {"name": "vae", "family": "vae", "seed": 0, "train": {"steps": 20, "batch_size": 32}},
        ],
        "attributor": {"epochs": 2, "patience": 2, "batch_size": 64},
        "encoders": {"sl": {"steps": 10, "batch_size": 32}, "ssl": {"steps": 10, "batch_size": 32}},
        "artifacts": {"kinds": ["nearest", "knn"], "knn_k": 4},
        "baselines": {"nataraj_levels": 16},
        "robustness": {"compare_augment": False},  # the augmented twins are tested on their own
        "seeds": [0],
        "chunk_rows": 64,
        "block_rows": 128,
    },
    # The factorial GAN zoo on one dataset: upsampling x loss x generator normalization varied independently,
    # so NMI and model parsing per design factor are not confounded (docs/configuration.md gives its cost).
    "factorial": {
        "n_reference": 5000,
        "n_real_class": 500,
        "n_per_model": 500,
        "zoo": _factorial_zoo(steps=1000),
        "attributor": {"epochs": 6, "patience": 3},
        "artifacts": {"kinds": ["nearest"]},
        "baselines": {"nataraj_levels": 32},
        "seeds": [0],
        # One open-set attributor, not one per model left out (16 more per method): the budget goes to NMI, model
        # parsing and the robustness table with the augmented twins.
        "open_set_holdout": "auto",
    },
    # For a GPU machine: more data, more training.
    "full": {
        "n_reference": 50000,
        "n_real_class": 10000,
        "n_per_model": 10000,
        "zoo": [dict(entry, train={"steps": 20000}) for entry in _DEMO_ZOO],
        "attributor": {"epochs": 30, "patience": 5},
        "artifacts": {"kinds": ["nearest", "knn"]},
        "seeds": [0, 1, 2],
        "datasets": FASHION_MNIST_SPLIT,
    },
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def settings_from_dict(data: Mapping[str, Any], where: str = "settings", label: Label | None = None) -> Settings:
    """Build validated Settings from plain data (a profile merged with a config file).

    Every value is converted and checked against its field (see :mod:`manifpt_core.settings_loader`);
    errors name the key, the value, what it must be and ``where`` the data came from. ``label``
    maps a key path to the name shown in errors.
    """
    return load(Settings, data, where, label=label)


def load_datasets(profile: str = "demo", path: str | Path | None = None) -> tuple[Settings, ...]:
    """Settings of every dataset of a profile, overridden key by key by a TOML file when given.

    The top-level keys are shared; each entry of ``datasets`` overrides them for one
    dataset. With no ``datasets`` (or an empty list) there is one dataset, the top level.
    A bad value given by an entry is named after it, e.g. ``datasets[1].n_reference``.
    """
    data, where = _profile_data(profile, path)
    entries = data.pop("datasets", None) or [{}]
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise InputError(f"{where}: datasets = {entries!r} must be a list of tables ([[datasets]] in TOML)")
    several = len(entries) > 1
    datasets = tuple(settings_from_dict(_merge(data, dict(entry)), where,
                                        _entry_label(i, entry) if entry or several else None)
                     for i, entry in enumerate(entries))
    names = [d.dataset for d in datasets]
    if len(set(names)) != len(names):
        raise InputError(f"{where}: datasets lists a dataset name twice: {names}")
    if len({d.spaces for d in datasets}) > 1:
        raise InputError(f"{where}: every dataset must use the same spaces; got {[list(d.spaces) for d in datasets]}")
    return datasets


def _entry_label(index: int, entry: Mapping[str, Any]) -> Label:
    """Names a key path after ``datasets[index]`` when that entry gave its value; the top-level keys keep their name."""
    prefix = f"datasets[{index}]"

    def label(path: str) -> str:
        if not path:
            return prefix
        node: Any = entry
        for part in re.findall(r"[^.\[\]]+", path):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return path
        return f"{prefix}.{path}"

    return label


def load_settings(profile: str = "demo", path: str | Path | None = None, dataset: str | None = None) -> Settings:
    """Settings of one dataset (by default the first) of a profile and optional TOML file."""
    datasets = load_datasets(profile, path)
    if dataset is None:
        return datasets[0]
    for settings in datasets:
        if settings.dataset == dataset:
            return settings
    raise InputError(f"no dataset {dataset!r} in the settings; datasets: {[d.dataset for d in datasets]}")


def _profile_data(profile: str, path: str | Path | None) -> tuple[dict[str, Any], str]:
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}; valid profiles: {sorted(PROFILES)}")
    data = _merge(PROFILES[profile], {"profile": profile})
    where = f"profile {profile!r}"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file {path} does not exist; pass an existing TOML file or none")
        try:
            override = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise InputError(f"config file {path} is not valid TOML: {err}") from err
        override.pop("profile", None)
        if ("dataset" in override or "source" in override) and "datasets" not in override:
            # A file that names its own data means that data, not the profile's datasets.
            data.pop("datasets", None)
        data = _merge(data, override)
        where = f"{path} (over profile {profile!r})"
    return data, where
