"""The registry of generator families, and checkpoint files for their weights.

A family is a subclass of :class:`Family` decorated with
:func:`register_family`; adding one to the zoo is one new module plus its
import in ``manifpt_core/zoo/__init__.py``.
"""

from __future__ import annotations

import abc
import inspect
import logging
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from manifpt_core.errors import InputError
from manifpt_core.zoo.cards import (
    DESIGN_FACTORS,
    NAME_RE,
    NAME_RULE,
    ModelCard,
    TrainSettings,
    check_factors,
)

logger = logging.getLogger(__name__)

_FAMILIES: dict[str, type[Family]] = {}


class Family(abc.ABC):
    """A kind of generative model that trains on images and samples new ones.

    Subclasses set the class attributes and implement the abstract
    :meth:`train` and :meth:`sample`. Families hold no state: everything a trained model needs is
    in the state dict that :meth:`train` returns plus the card.

    Class attributes:
        name: registry name, used as ``ModelCard.family``.
        default_factors: the value of each of the six design factors.
        supported_factors: for factors a card may set to other values than the
            default, the values the family implements. Factors not listed are
            fixed to their default.
        default_train: training settings a card gets when it gives none.
    """

    name: ClassVar[str]
    default_factors: ClassVar[dict[str, str]]
    supported_factors: ClassVar[dict[str, tuple[str, ...]]] = {}
    default_train: ClassVar[TrainSettings]

    def resolve_factors(self, given: Mapping[str, str], train: TrainSettings) -> dict[str, str]:
        """Complete a card's (possibly partial) factors with the defaults; check the family implements them.

        Override when a factor follows from the training settings (e.g. the
        loss of a VAE from ``beta``).
        """
        full = {**self.default_factors, **given}
        for key, value in full.items():
            allowed = self.supported_factors.get(key, (self.default_factors[key],))
            if value not in allowed:
                raise InputError(
                    f"family {self.name!r} implements {key}={' or '.join(allowed)}, not {value!r}; "
                    f"drop '{key}' from the card or pick another family"
                )
        return full

    @abc.abstractmethod
    def train(
        self, images: np.ndarray, card: ModelCard, device: str = "cpu", progress: bool = True
    ) -> dict[str, torch.Tensor]:
        """Train on uint8 images of shape (N, C, H, W); return the generator's state dict on the CPU."""
        raise NotImplementedError

    @abc.abstractmethod
    def sample(
        self,
        state: Mapping[str, torch.Tensor],
        card: ModelCard,
        image_shape: tuple[int, int, int],
        n: int,
        seed: int,
        device: str = "cpu",
        batch_size: int = 512,
    ) -> np.ndarray:
        """Draw ``n`` images, uint8 of shape (n, C, H, W), the same for the same ``seed``."""
        raise NotImplementedError


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator that adds a :class:`Family` subclass to the registry."""
    if not (isinstance(cls, type) and issubclass(cls, Family)):
        raise InputError(f"only Family subclasses can be registered, got {cls!r}")
    if inspect.isabstract(cls):
        raise InputError(f"{cls.__qualname__} must implement train and sample to be registered")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"family name {name!r} of {cls.__qualname__} must match {NAME_RULE}")
    factors = getattr(cls, "default_factors", None)
    if not isinstance(factors, dict) or set(factors) != set(DESIGN_FACTORS):
        raise InputError(
            f"{cls.__qualname__}.default_factors must give all of {', '.join(DESIGN_FACTORS)}, "
            f"got {factors!r}"
        )
    check_factors(factors)
    for key, values in cls.supported_factors.items():
        for value in values:
            check_factors({key: value})
    if not isinstance(getattr(cls, "default_train", None), TrainSettings):
        raise InputError(f"{cls.__qualname__}.default_train must be a TrainSettings")
    known = _FAMILIES.get(name)
    # The same class twice is a module re-import; two classes under one name is a clash.
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise InputError(f"family name {name!r} is taken by {known.__module__}.{known.__qualname__}")
    _FAMILIES[name] = cls
    return cls


def get_family(name: str) -> Family:
    """The registered family called ``name``; an unknown name raises InputError listing the families."""
    cls = _FAMILIES.get(name) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(families()) or "(none)"
        raise InputError(f"unknown model family {name!r}; registered families: {known}")
    return cls()


def families() -> tuple[str, ...]:
    """Names of the registered families, sorted."""
    return tuple(sorted(_FAMILIES))


def save_checkpoint(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write a state dict to ``path`` atomically: a reader sees the old file or the whole new one.

    Tensors are moved to the CPU first so the file loads on any machine.
    Returns the path written.
    """
    path = Path(path)
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(f"a checkpoint maps names to tensors; these entries are not: {bad[:5]}")
    cpu_state = {k: v.detach().cpu() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp file sits beside the target so os.replace is a rename on one filesystem.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(cpu_state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    logger.debug("saved checkpoint %s (%d tensors)", path, len(cpu_state))
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict written by :func:`save_checkpoint`, onto the CPU, without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist; train the model first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # These are what torch.load raises for a truncated, garbled or non-weights file; OSError
    # (e.g. permissions) is not corruption and propagates as is.
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise InputError(
            f"checkpoint {path} is corrupt or not a torch state dict ({err}); delete it and retrain"
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"checkpoint {path} does not hold a state dict of tensors; delete it and retrain")
    return state
