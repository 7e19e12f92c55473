"""Registry of embedding spaces: how an image becomes the vector its nearest real neighbour is sought in.

Preprocessing changes the numbers, so every space states its settings; they
enter the fingerprint of everything computed in that space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from manifpt_core.errors import InputError

_SPACES: dict[str, type["Space"]] = {}


def register_space(cls: type["Space"]) -> type["Space"]:
    """Class decorator adding a space to the registry under ``cls.name``."""
    if cls.name in _SPACES:
        raise ValueError(f"embedding space {cls.name!r} is registered twice")
    _SPACES[cls.name] = cls
    return cls


def space_names() -> tuple[str, ...]:
    return tuple(sorted(_SPACES))


def get_space(name: str) -> "Space":
    """The space registered under ``name``; an unknown name lists the valid ones."""
    try:
        return _SPACES[name]()
    except KeyError:
        raise InputError(f"unknown embedding space {name!r}; valid spaces: {', '.join(space_names())}") from None


@dataclass(frozen=True)
class Space:
    """An embedding space. ``embed`` maps uint8 images (N, C, H, W) to float32 vectors (N, D)."""

    name: ClassVar[str]
    version: ClassVar[str]
    image_shaped: ClassVar[bool]  # True when a vector reshapes to (C, H, W), so artifacts are images
    learned: ClassVar[bool] = False  # True when an encoder (trained or loaded) does the embedding

    def settings(self) -> dict[str, Any]:
        return {"space": self.name, "version": self.version, **asdict(self)}

    def embed(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def dim(self, image_shape: tuple[int, int, int]) -> int:
        return int(np.prod(image_shape))


def _check_images(images: np.ndarray) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"expected uint8 images of shape (N, C, H, W), got {got}")
    return images


@register_space
@dataclass(frozen=True)
class RGBSpace(Space):
    """Pixels scaled to [0, 1], flattened channel-first: the image itself."""

    name: ClassVar[str] = "rgb"
    version: ClassVar[str] = "1"
    image_shaped: ClassVar[bool] = True
    scale: float = 1.0 / 255.0

    def embed(self, images: np.ndarray) -> np.ndarray:
        images = _check_images(images)
        return (images.reshape(len(images), -1).astype(np.float32) * np.float32(self.scale)).astype(np.float32)


@register_space
@dataclass(frozen=True)
class FreqSpace(Space):
    """Per-channel 2-D FFT of the [0, 1] image, zero frequency shifted to the centre, log(|F| + eps).

    The unnormalised FFT is used (numpy's ``norm="backward"``), so the DC term is
    the pixel sum; ``eps`` keeps the log finite where a magnitude is zero, and
    ``eps = 1`` (the default) makes this ``log1p(|F|)``, which keeps exact zeros
    from dominating L2 distances.
    """

    name: ClassVar[str] = "freq"
    version: ClassVar[str] = "1"
    image_shaped: ClassVar[bool] = True
    eps: float = 1.0

    def embed(self, images: np.ndarray) -> np.ndarray:
        images = _check_images(images)
        x = images.astype(np.float32) / np.float32(255.0)
        spectrum = np.fft.fftshift(np.fft.fft2(x, axes=(-2, -1)), axes=(-2, -1))
        return np.log(np.abs(spectrum) + self.eps).astype(np.float32).reshape(len(images), -1)



@dataclass(frozen=True)
class LearnedSpace(Space):
    """A space whose vectors come from an encoder: the space card in the store holds it (steps.space)."""

    image_shaped: ClassVar[bool] = False
    learned: ClassVar[bool] = True

    def embed(self, images: np.ndarray) -> np.ndarray:
        raise InputError(f"the {self.name} space embeds with its encoder; open it with manifpt_core.steps.space.open_space")


@register_space
@dataclass(frozen=True)
class SupervisedSpace(LearnedSpace):
    """Penultimate features of a supervised classifier: ResNet-50 with local weights, or one trained on the real labels."""

    name: ClassVar[str] = "sl"
    version: ClassVar[str] = "1"


@register_space
@dataclass(frozen=True)
class SelfSupervisedSpace(LearnedSpace):
    """Barlow Twins features: ResNet-50 with local weights, or an encoder trained on the real images."""

    name: ClassVar[str] = "ssl"
    version: ClassVar[str] = "1"
