"""Model cards: what a zoo model is (family, design factors) and how it was trained.

A card is the identity of one trained generator. It is frozen and hashable, and
``to_dict`` gives a canonical JSON-safe form, so a card can name files, key
store partitions and be written into config files. Cards may be short in
config: missing design factors and training settings take the family's
defaults when the card is built.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from manifpt_core.errors import InputError
from manifpt_core.store.layout import NAME_PATTERN
from manifpt_core.store.layout import NAME_RULE as NAME_REGEX

# The six design factors of the ManiFPT paper (Table 5) and their allowed values.
DESIGN_FACTORS: dict[str, tuple[str, ...]] = {
    "upsampling": ("transposed_conv", "nearest_conv", "bilinear_conv", "pixel_shuffle", "none"),
    "nonlinearity": ("relu", "leaky_relu", "gelu", "silu", "tanh", "none"),
    "normalization": ("batch", "layer", "group", "instance", "spectral", "none"),
    "downsampling": ("strided_conv", "avg_pool", "max_pool", "none"),
    "skip": ("none", "residual", "unet"),
    "loss": (
        "non_saturating",
        "least_squares",
        "wasserstein_gp",
        "elbo",
        "beta_elbo",
        "likelihood",
        "denoising",
    ),
}

NAME_RULE = NAME_PATTERN
NAME_RE = NAME_REGEX
# Seeds go to torch.manual_seed, which takes a 64-bit integer.
_MAX_SEED = 2**63 - 1


def check_factors(factors: Mapping[str, str]) -> None:
    """Raise InputError for a factor name or value outside :data:`DESIGN_FACTORS`."""
    for key, value in factors.items():
        if key not in DESIGN_FACTORS:
            raise InputError(
                f"unknown design factor {key!r}; valid factors: {', '.join(DESIGN_FACTORS)}"
            )
        if value not in DESIGN_FACTORS[key]:
            raise InputError(
                f"unknown value {value!r} for design factor {key!r}; "
                f"valid values: {', '.join(DESIGN_FACTORS[key])}"
            )


def _reject_unknown_keys(d: Any, valid: Iterable[str], what: str) -> None:
    if not isinstance(d, Mapping):
        raise InputError(f"{what} must be a mapping, got {type(d).__name__}")
    valid = tuple(valid)
    unknown = sorted(str(k) for k in d if k not in valid)
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)} in {what}; valid keys: {', '.join(valid)}")


def _check_int(value: Any, what: str, low: int, high: int | None = None) -> int:
    # bool is an int subclass, but `steps: true` in a config is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InputError(f"{what} must be {bound}, got {value}")
    return value


def _check_positive_float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{what} must be a finite number > 0, got {value}")
    return float(value)


@dataclass(frozen=True)
class TrainSettings:
    """How a zoo model is trained.

    ``width`` is the base channel width of the networks; ``beta`` weighs the KL
    term of VAE-like families (1.0 is the plain ELBO) and is ignored by others.
    """

    steps: int
    batch_size: int
    lr: float
    latent_dim: int
    width: int
    beta: float = 1.0

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "latent_dim", "width"):
            _check_int(getattr(self, key), f"train.{key}", 1)
        # Stored as float so that lr=1 and lr=1.0 give equal, equally hashed cards.
        object.__setattr__(self, "lr", _check_positive_float(self.lr, "train.lr"))
        object.__setattr__(self, "beta", _check_positive_float(self.beta, "train.beta"))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-safe dict, in field order."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainSettings:
        """Build settings from a dict; unknown keys raise InputError listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        _reject_unknown_keys(d, valid, "train settings")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise InputError(f"train settings miss key(s) {', '.join(missing)}")
        return cls(**d)


@dataclass(frozen=True)
class ModelCard:
    """One zoo model: its name, family, design factors, seed and training settings.

    ``factors`` may be given as a mapping or as (factor, value) pairs, and may
    be partial: it is completed with the family's defaults and stored as a
    tuple of pairs in :data:`DESIGN_FACTORS` order, so the card stays hashable.
    ``train=None`` takes the family's default settings. The family must be
    registered (importing :mod:`manifpt_core.zoo` registers the built-in ones).
    """

    name: str
    family: str
    factors: tuple[tuple[str, str], ...] = ()
    seed: int = 0
    train: TrainSettings | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise InputError(
                f"bad model card name {self.name!r}: it becomes a file and partition name, so it must "
                f"match {NAME_RULE} (lowercase letters, digits, '_' or '-', at most 64 characters)"
            )
        family = _family(self.family)
        _check_int(self.seed, "seed", 0, _MAX_SEED)
        train = family.default_train if self.train is None else self.train
        if not isinstance(train, TrainSettings):
            raise InputError(f"train must be a TrainSettings, got {type(train).__name__}")
        given = _factor_mapping(self.factors)
        check_factors(given)
        full = family.resolve_factors(given, train)
        check_factors(full)
        object.__setattr__(self, "train", train)
        object.__setattr__(self, "factors", tuple((k, full[k]) for k in DESIGN_FACTORS))

    def factor(self, key: str) -> str:
        """The value of one design factor, e.g. ``card.factor("loss")``."""
        if key not in DESIGN_FACTORS:
            raise InputError(f"unknown design factor {key!r}; valid factors: {', '.join(DESIGN_FACTORS)}")
        return dict(self.factors)[key]

    def to_dict(self) -> dict[str, Any]:
        """The card as a canonical JSON-safe dict: fixed key order, all factors, all settings."""
        assert self.train is not None  # filled in __post_init__
        return {
            "name": self.name,
            "family": self.family,
            "factors": dict(self.factors),
            "seed": self.seed,
            "train": self.train.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCard:
        """Build a card from a (possibly short) dict such as a config entry.

        Only ``name`` and ``family`` are required. Missing factors and training
        settings come from the family's defaults; unknown keys raise InputError
        listing the valid ones.
        """
        valid = [f.name for f in dataclasses.fields(cls)]
        _reject_unknown_keys(d, valid, "model card")
        missing = [k for k in ("name", "family") if k not in d]
        if missing:
            raise InputError(f"model card misses key(s) {', '.join(missing)}; valid keys: {', '.join(valid)}")
        family = _family(d["family"])
        factors = d.get("factors") or {}
        _reject_unknown_keys(factors, DESIGN_FACTORS, "model card factors")
        train = d.get("train") or {}
        _reject_unknown_keys(train, [f.name for f in dataclasses.fields(TrainSettings)], "train settings")
        settings = TrainSettings.from_dict({**family.default_train.to_dict(), **train})
        return cls(name=d["name"], family=d["family"], factors=factors, seed=d.get("seed", 0), train=settings)


def _factor_mapping(factors: Any) -> dict[str, str]:
    if isinstance(factors, Mapping):
        return dict(factors)
    try:
        pairs = [tuple(p) for p in factors]
    except TypeError as err:
        raise InputError(f"factors must be a mapping or (factor, value) pairs, got {factors!r}") from err
    if any(len(p) != 2 for p in pairs):
        raise InputError(f"factors must be a mapping or (factor, value) pairs, got {factors!r}")
    out = dict(pairs)
    if len(out) != len(pairs):
        raise InputError(f"a design factor is given twice in {factors!r}")
    return out


def _family(name: Any):
    # Imported here, not at module top: the registry imports this module for the card types.
    from manifpt_core.zoo.registry import get_family

    return get_family(name)
