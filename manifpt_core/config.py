"""Pipeline settings: frozen dataclasses built from a named profile plus an optional TOML file.

Unknown keys are an error that lists the valid ones, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from manifpt_core.artifacts import KINDS as ARTIFACT_KINDS
from manifpt_core.attribution import FitSettings
from manifpt_core.baselines import BaselineSettings
from manifpt_core.encoders import EncoderSettings
from manifpt_core.errors import InputError
from manifpt_core.search import SearchSettings
from manifpt_core.spaces import get_space
from manifpt_core.store.layout import check_name
from manifpt_core.zoo import ModelCard

SOURCE_KINDS = ("fashion_mnist", "folder")
REMOVED_MODELS = ("keep", "delete")
DEVICES = ("auto", "cpu", "cuda")


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
    resize: tuple[int, int] | None = None
    resize_filter: str = "bicubic"
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise InputError(f"source.kind = {self.kind!r} is not one of {SOURCE_KINDS}")
        if self.kind == "folder" and not self.path:
            raise InputError("source.kind = 'folder' needs source.path: the folder holding real/ and one folder per model")
        if self.resize is not None:
            object.__setattr__(self, "resize", tuple(int(v) for v in self.resize))
        if self.classes is not None:
            if self.kind != "fashion_mnist":
                raise InputError("source.classes selects Fashion-MNIST labels; remove it for a folder source")
            classes = tuple(sorted(int(c) for c in self.classes))
            if not classes or any(c < 0 or c > 9 for c in classes) or len(set(classes)) != len(classes):
                raise InputError(f"source.classes = {list(self.classes)} must list distinct labels in 0..9")
            object.__setattr__(self, "classes", classes)


@dataclass(frozen=True)
class Encoders:
    """How the learned spaces get their encoder: ``encoders.sl`` and ``encoders.ssl``."""

    sl: EncoderSettings = field(default_factory=EncoderSettings)
    ssl: EncoderSettings = field(default_factory=EncoderSettings)

    def for_space(self, space: str) -> EncoderSettings:
        return getattr(self, space)


@dataclass(frozen=True)
class ArtifactSettings:
    """Which estimates of x* make artifacts: ``nearest`` (the nearest reference point, the paper's)
    and ``knn`` (the projection onto the affine span of the ``knn_k`` nearest, ridge ``knn_reg``)."""

    kinds: tuple[str, ...] = ("nearest",)
    knn_k: int = 8
    knn_reg: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        unknown = [k for k in self.kinds if k not in ARTIFACT_KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise InputError(f"artifacts.kinds = {list(self.kinds)}: list distinct kinds among {list(ARTIFACT_KINDS)}")
        if isinstance(self.knn_k, bool) or not isinstance(self.knn_k, int) or self.knn_k < 2:
            raise InputError(f"artifacts.knn_k = {self.knn_k!r} must be an int >= 2 (a patch needs two points)")
        if not isinstance(self.knn_reg, (int, float)) or self.knn_reg < 0:
            raise InputError(f"artifacts.knn_reg = {self.knn_reg!r} must be a number >= 0")

    def settings(self) -> dict[str, Any]:
        return {"kinds": list(self.kinds), "knn_k": self.knn_k, "knn_reg": self.knn_reg}

    @property
    def neighbours(self) -> int:
        """How many nearest reference points the artifact step needs per query."""
        return self.knn_k if "knn" in self.kinds else 1


def method_name(space: str, kind: str) -> str:
    """The attributor (and report row) of a space's artifacts of one kind: ``rgb``, ``rgb-knn``."""
    return space if kind == "nearest" else f"{space}-{kind}"


def parse_method(method: str) -> tuple[str, str]:
    """``(space, kind)`` of a method name made by :func:`method_name`."""
    space, _, kind = method.partition("-")
    return space, kind or "nearest"


@dataclass(frozen=True)
class Settings:
    """Everything that shapes a pipeline run. See docs/configuration.md for each key."""

    profile: str
    dataset: str = "fashion_mnist"
    source: SourceSettings = field(default_factory=SourceSettings)
    n_reference: int = 10000
    n_real_class: int = 2000
    n_per_model: int = 2000
    spaces: tuple[str, ...] = ("rgb", "freq", "sl", "ssl")
    encoders: Encoders = field(default_factory=Encoders)
    search: SearchSettings = field(default_factory=SearchSettings)
    artifacts: ArtifactSettings = field(default_factory=ArtifactSettings)
    zoo: tuple[ModelCard, ...] = ()
    attributor: FitSettings = field(default_factory=FitSettings)
    baselines: BaselineSettings = field(default_factory=BaselineSettings)
    seeds: tuple[int, ...] = (0,)
    open_set_holdout: str = "auto"
    removed_models: str = "keep"  # a model whose folder or zoo entry is gone: keep or delete its stored data
    data_seed: int = 0
    chunk_rows: int = 1024
    block_rows: int = 4096
    device: str = "auto"

    def __post_init__(self) -> None:
        check_name("dataset", self.dataset)
        for key in ("n_reference", "n_real_class", "n_per_model", "chunk_rows", "block_rows"):
            if getattr(self, key) <= 0:
                raise InputError(f"{key} must be positive, got {getattr(self, key)}")
        for space in self.spaces:
            get_space(space)
        if len(set(self.spaces)) != len(self.spaces):
            raise InputError(f"spaces lists a space twice: {list(self.spaces)}")
        names = [card.name for card in self.zoo]
        if len(set(names)) != len(names):
            raise InputError(f"zoo lists a model name twice: {names}")
        if "real" in names:
            raise InputError("'real' is reserved for the real images; rename that zoo entry")
        if not self.seeds:
            raise InputError("seeds must list at least one attributor seed")
        if self.removed_models not in REMOVED_MODELS:
            raise InputError(f"removed_models = {self.removed_models!r} is not one of {REMOVED_MODELS}")
        if self.device not in DEVICES:
            raise InputError(f"device = {self.device!r} is not one of {DEVICES}")

    @property
    def methods(self) -> tuple[str, ...]:
        """Every attributor over artifacts: one per space and artifact kind."""
        return tuple(method_name(space, kind) for space in self.spaces for kind in self.artifacts.kinds)

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

PROFILES: dict[str, dict[str, Any]] = {
    # Sized for a 2-core CPU: the README's first command.
    "demo": {
        "n_reference": 10000,
        "n_real_class": 1000,
        "n_per_model": 1000,
        "zoo": _DEMO_ZOO,
        "attributor": {"epochs": 10, "patience": 3},
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
        "seeds": [0],
        "chunk_rows": 64,
        "block_rows": 128,
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


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise InputError(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(valid)}")
    return cls(**data)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _tuples(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """TOML arrays arrive as lists; frozen settings hold tuples."""
    return {k: (tuple(v) if k in keys and isinstance(v, list) else v) for k, v in data.items()}


def settings_from_dict(data: dict[str, Any], where: str = "settings") -> Settings:
    """Build validated Settings from plain data (a profile merged with a config file)."""
    data = dict(data)
    if "source" in data:
        source = dict(data["source"])
        if source.get("classes") is not None:
            source["classes"] = tuple(source["classes"])
        data["source"] = _build(SourceSettings, source, f"{where} [source]")
    if "attributor" in data:
        attr = dict(data["attributor"])
        for key in ("widths", "mlp_hidden"):
            if key in attr:
                attr[key] = tuple(attr[key])
        data["attributor"] = _build(FitSettings, attr, f"{where} [attributor]")
    if "zoo" in data:
        data["zoo"] = tuple(ModelCard.from_dict(dict(entry)) for entry in data["zoo"])
    if "encoders" in data:
        raw = dict(data["encoders"])
        unknown = sorted(set(raw) - {"sl", "ssl"})
        if unknown:
            raise InputError(f"unknown key(s) {unknown} in {where} [encoders]; valid keys: ['sl', 'ssl']")
        data["encoders"] = Encoders(**{space: EncoderSettings.from_dict(space, dict(value)) for space, value in raw.items()})
    if "search" in data:
        data["search"] = _build(SearchSettings, dict(data["search"]), f"{where} [search]")
    if "baselines" in data:
        data["baselines"] = _build(BaselineSettings, _tuples(dict(data["baselines"]), ("methods",)), f"{where} [baselines]")
    if "artifacts" in data:
        data["artifacts"] = _build(ArtifactSettings, _tuples(dict(data["artifacts"]), ("kinds",)), f"{where} [artifacts]")
    for key in ("spaces", "seeds"):
        if key in data:
            data[key] = tuple(data[key])
    return _build(Settings, data, where)


def load_datasets(profile: str = "demo", path: str | Path | None = None) -> tuple[Settings, ...]:
    """Settings of every dataset of a profile, overridden key by key by a TOML file when given.

    The top-level keys are shared; each entry of ``datasets`` overrides them for one
    dataset. With no ``datasets`` (or an empty list) there is one dataset, the top level.
    """
    data, where = _profile_data(profile, path)
    entries = data.pop("datasets", None) or [{}]
    datasets = tuple(settings_from_dict(_merge(data, dict(entry)), f"{where} [datasets]") for entry in entries)
    names = [d.dataset for d in datasets]
    if len(set(names)) != len(names):
        raise InputError(f"datasets lists a dataset name twice: {names}")
    if len({d.spaces for d in datasets}) > 1:
        raise InputError(f"every dataset must use the same spaces; got {[list(d.spaces) for d in datasets]}")
    return datasets


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
