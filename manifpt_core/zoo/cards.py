"""Model cards: what a zoo model is (family, design factors) and how it was trained.

A card is the identity of one trained generator. It is frozen and hashable, and
``to_dict`` gives a canonical JSON-safe form, so a card can name files, key
store partitions and be written into config files. Cards may be short in
config: missing design factors and training settings take the family's
defaults when the card is built.

The family registry builds on cards, so this module does not import it: the
registry hands its lookup to :func:`bind_family_lookup` when it is imported
(importing :mod:`manifpt_core.zoo` does that).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from manifpt_core.errors import InputError
from manifpt_core.names import NAME_PATTERN
from manifpt_core.names import NAME_RULE as NAME_REGEX
from manifpt_core.settings_loader import Label, load, positive, setting
from manifpt_core.torch_helpers import PRECISIONS

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
        "hinge",
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


def design(upsampling: str, nonlinearity: str, normalization: str, downsampling: str, skip: str,
           loss: str) -> dict[str, str]:
    """The six design factors as a mapping in :data:`DESIGN_FACTORS` order, e.g. a family's defaults:
    ``design("transposed_conv", "relu", "batch", "strided_conv", "none", "non_saturating")``."""
    return {"upsampling": upsampling, "nonlinearity": nonlinearity, "normalization": normalization,
            "downsampling": downsampling, "skip": skip, "loss": loss}


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

    steps: int = positive()
    batch_size: int = positive()
    lr: float = positive()
    latent_dim: int = positive()
    width: int = positive()
    beta: float = positive(1.0)
    # "auto": bf16 autocast on CUDA and on CPUs with native bf16 (AVX-512 BF16 / AMX), fp32 elsewhere; "fp32", "bf16"
    precision: str = "auto"

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "latent_dim", "width"):
            _check_int(getattr(self, key), f"train.{key}", 1)
        if self.precision not in PRECISIONS:
            raise InputError(f"train.precision = {self.precision!r} is not one of {list(PRECISIONS)}")
        # Stored as float so that lr=1 and lr=1.0 give equal, equally hashed cards.
        object.__setattr__(self, "lr", _check_positive_float(self.lr, "train.lr"))
        object.__setattr__(self, "beta", _check_positive_float(self.beta, "train.beta"))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-safe dict, in field order."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "", key: str = "train",
                  label: Label | None = None) -> TrainSettings:
        """Build settings from a dict, checked by :func:`manifpt_core.settings_loader.load`: unknown or
        missing keys and bad values raise InputError naming ``key.<name>`` and ``where``."""
        return load(cls, d, where, key=key, label=label)


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
    seed: int = setting(0, ge=0, le=_MAX_SEED)
    train: TrainSettings | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or NAME_RE.fullmatch(self.name) is None:
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
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "", key: str = "",
                  label: Label | None = None) -> ModelCard:
        """Build a card from a (possibly short) dict such as a config entry.

        Only ``name`` and ``family`` are required. Missing factors and training
        settings come from the family's defaults; unknown keys raise InputError
        listing the valid ones. Values are checked by :func:`manifpt_core.settings_loader.load`,
        whose errors name ``key`` (e.g. ``zoo[1]``), the value and ``where`` the dict came from.
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
        # Pairs, the stored form: a table of factors is not a tuple to the loader.
        data = {**d, "factors": tuple(factors.items()), "train": {**family.default_train.to_dict(), **train}}
        return load(cls, data, where, key=key, label=label)


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


class FamilyDefaults(Protocol):
    """What a card needs of its family: the default settings and the completion of its design factors."""

    default_train: TrainSettings

    def resolve_factors(self, given: Mapping[str, str], train: TrainSettings) -> dict[str, str]: ...


_family_lookup: Callable[[str], FamilyDefaults] | None = None


def bind_family_lookup(lookup: Callable[[str], FamilyDefaults]) -> None:
    """Set how cards find their family by name: the family registry calls this with its ``get_family``.

    ``lookup`` raises InputError for an unknown name.
    """
    global _family_lookup
    _family_lookup = lookup


def _family(name: Any) -> FamilyDefaults:
    if _family_lookup is None:
        raise InputError(f"no family registry is loaded to look up family {name!r}; import manifpt_core.zoo first")
    return _family_lookup(name)
