"""The registry of generator families, the family base class, and checkpoint files for their weights.

A family is a subclass of :class:`Family` decorated with
:func:`register_family`; adding one to the zoo is one new module plus its
import in ``manifpt_core/zoo/__init__.py``. The base class trains and samples
the same way for every family; a family writes its networks and one
optimisation step.
"""

from __future__ import annotations

import abc
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import autocast_for, load_torch, make_generator, save_torch, seeded
from manifpt_core.zoo.cards import (
    DESIGN_FACTORS,
    NAME_RE,
    NAME_RULE,
    ModelCard,
    TrainSettings,
    bind_family_lookup,
    check_factors,
)
from manifpt_core.zoo.training import (
    check_image_shape,
    check_images,
    cpu_state,
    images_to_tensor,
    load_state,
    run_steps,
    sample_from_latents,
)

logger = logging.getLogger(__name__)

_FAMILIES: dict[str, type[Family]] = {}

# One optimisation step: a batch of training images -> its losses as 0-d tensors.
Step = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainingRun:
    """What a family's :meth:`Family.training_step` builds on.

    ``settings`` are the card's, ``channels`` and ``size`` the training
    images' C and H = W, ``noise`` the generator the steps draw their random
    numbers from, on ``device``.
    """

    settings: TrainSettings
    channels: int
    size: int
    noise: torch.Generator
    device: str


class Family(abc.ABC):
    """A kind of generative model that trains on images and samples new ones.

    :meth:`train` and :meth:`sample` are the same for every family; subclasses
    set the class attributes and implement the hooks they call:
    :meth:`network` (the network that makes images; its state dict is the
    trained model), :meth:`training_step` (everything else training needs, and
    one optimisation step) and :meth:`decode` (latents to images with that
    network). Families hold no state: everything a trained model needs is in
    the state dict that :meth:`train` returns plus the card.

    Class attributes:
        name: registry name, used as ``ModelCard.family``.
        default_factors: the value of each of the six design factors.
        supported_factors: for factors a card may set to other values than the
            default, the values the family implements. Factors not listed are
            fixed to their default.
        default_train: training settings a card gets when it gives none.
        pixel_range: the (low, high) values the training images' [0, 255] are mapped to.
        min_batch_size: the smallest ``train.batch_size`` the networks train with (2 with batch norm).
        image_latents: True when the latents have the image's C*H*W dimensions (flows,
            diffusion) rather than ``train.latent_dim``.
    """

    name: ClassVar[str]
    default_factors: ClassVar[dict[str, str]]
    supported_factors: ClassVar[dict[str, tuple[str, ...]]] = {}
    default_train: ClassVar[TrainSettings]
    pixel_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    min_batch_size: ClassVar[int] = 1
    image_latents: ClassVar[bool] = False

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
    def network(self, settings: TrainSettings, channels: int, size: int) -> nn.Module:
        """A new, untrained network that makes images (generator, decoder, flow or denoiser) for
        ``channels`` x ``size`` x ``size`` images; :meth:`train` returns its trained state dict."""
        raise NotImplementedError

    @abc.abstractmethod
    def training_step(self, run: TrainingRun) -> tuple[Step, nn.Module]:
        """Build the networks (on ``run.device``, in training mode) and optimizers; return one optimisation
        step and the network whose weights are the trained model.

        Runs with torch's global RNG seeded by the card, so initialisations are
        reproducible; the step draws its random numbers from ``run.noise``.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def decode(self, net: nn.Module, z: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] made by ``net`` (see :meth:`network`, trained) from latents ``z``
        (B, latent dims) drawn from N(0, I). Runs in inference mode."""
        raise NotImplementedError

    def train(
        self, images: np.ndarray, card: ModelCard, device: str = "cpu", progress: bool = True
    ) -> dict[str, torch.Tensor]:
        """Train on uint8 images of shape (N, C, H, W); return the generator's state dict on the CPU.

        Initialisation draws from torch's global RNG seeded with ``card.seed``
        (the caller's RNG state is restored afterwards), the steps' noise from a
        generator seeded with ``card.seed + 1``: the same card gives the same
        weights on the CPU.
        """
        c, h, _ = check_images(images)
        settings = card.train
        if settings.batch_size < self.min_batch_size:
            raise InputError(f"{self.name} needs train.batch_size >= {self.min_batch_size} for batch norm, "
                             f"got {settings.batch_size}")
        with seeded(card.seed, device):
            noise = make_generator(card.seed + 1, device)
            step, trained = self.training_step(TrainingRun(settings, c, h, noise, device))

            def in_precision(batch: torch.Tensor) -> Mapping[str, torch.Tensor]:
                with autocast_for(device, settings.precision):
                    return step(batch)

            run_steps(in_precision, images_to_tensor(images, device, *self.pixel_range), card, progress)
        return cpu_state(trained)

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
        """Draw ``n`` images, uint8 of shape (n, C, H, W), the same for the same ``seed``.

        The latents are N(0, I), drawn on the CPU in fixed blocks, so a seed
        gives the same images on every device and for every ``batch_size``, and
        a smaller ``n`` gives a prefix.
        """
        c, h, w = check_image_shape(image_shape)
        net = self.network(card.train, c, h)
        load_state(net, state, card, (c, h, w), device)
        latent_dim = c * h * w if self.image_latents else card.train.latent_dim
        return sample_from_latents(
            lambda z: self.decode(net, z, (c, h, w)), n, latent_dim, (c, h, w), seed, device, batch_size
        )


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator that adds a :class:`Family` subclass to the registry."""
    if not (isinstance(cls, type) and issubclass(cls, Family)):
        raise InputError(f"only Family subclasses can be registered, got {cls!r}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise InputError(f"{cls.__qualname__} must implement {missing} to be registered")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
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
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(f"a checkpoint maps names to tensors; these entries are not: {bad[:5]}")
    on_cpu = {k: v.detach().cpu() for k, v in state.items()}
    path = save_torch(on_cpu, path)
    logger.debug("saved checkpoint %s (%d tensors)", path, len(on_cpu))
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict written by :func:`save_checkpoint`, onto the CPU, without unpickling code."""
    state = load_torch(path, "generator checkpoint", fix="delete it and train the model again",
                       missing_fix="train the model first")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"generator checkpoint '{path}' does not hold a state dict of tensors; "
                         "delete it and train the model again")
    return state


# Cards complete themselves with their family's defaults; they find the family through this lookup.
bind_family_lookup(get_family)
