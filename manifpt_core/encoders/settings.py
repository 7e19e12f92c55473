"""Settings of a learned embedding space's encoder: the config table ``encoders.<space>``."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from manifpt_core.encoders.preprocess import FILTERS
from manifpt_core.errors import InputError
from manifpt_core.settings_loader import Label, load, positive, setting

SPACES = ("sl", "ssl")
# Errors name the config key; the settings do not know their space unless built by from_dict.
_ANY_SPACE = "encoders.<space>"
# The trained encoder halves the image in its stem and in each stage after the first; below
# 8 pixels the last stage would pool a single pixel of mostly padding.
MIN_IMAGE_SIDE = 8
# What ResNet-50 with ImageNet-style weights expects when image_size is not given.
RESNET50_SIZE = (224, 224)


def _int(value: Any, key: str, low: int) -> int:
    # bool is an int subclass, but `steps = true` in a config is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{_ANY_SPACE}.{key} must be an integer >= {low}, got {value!r}")
    return value


def _float(value: Any, key: str, positive: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise InputError(f"{_ANY_SPACE}.{key} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    # Stored as float so that lr=1 and lr=1.0 give equal settings and equal fingerprints.
    return float(value)


def _ints(value: Any, key: str, low: int, length: int | None) -> tuple[int, ...]:
    items = tuple(value) if isinstance(value, (list, tuple)) else None
    bad = items is None or not items or (length is not None and len(items) != length) or any(
        isinstance(v, bool) or not isinstance(v, int) or v < low for v in items
    )
    if bad:
        count = f"{length} integers" if length else "a non-empty list of integers"
        raise InputError(f"{_ANY_SPACE}.{key} must be {count}, each >= {low}, got {value!r}")
    return items


@dataclass(frozen=True)
class EncoderSettings:
    """How the encoder of a learned space (``sl`` or ``ssl``) is made.

    With ``weights`` (a local ResNet-50 weights file) the encoder is torchvision's
    ResNet-50 with those weights, its 2048-d penultimate features, on
    ``image_size`` images (default 224x224). Without, a small ResNet
    (``widths``) is trained on the real reference images for ``steps`` AdamW
    steps with a cosine learning rate: on their class labels for ``sl``, with
    the Barlow Twins loss (``barlow_lambda``, a 3-layer projector of width
    ``projector_dim``) for ``ssl``; its features have ``feature_dim`` values.
    ``image_size`` resizes the images first (None keeps the native size) with
    ``resize_filter``.
    """

    weights: str | None = None
    steps: int = positive(400)
    batch_size: int = setting(128, ge=2)
    lr: float = positive(1e-3)
    weight_decay: float = setting(1e-4, ge=0)
    feature_dim: int = positive(256)
    barlow_lambda: float = setting(5e-3, ge=0)
    projector_dim: int = positive(512)
    image_size: tuple[int, int] | None = setting(None, ge=MIN_IMAGE_SIDE)
    resize_filter: str = "bilinear"
    widths: tuple[int, ...] = positive((32, 64, 128))

    def __post_init__(self) -> None:
        if self.weights is not None:
            weights = os.fspath(self.weights) if isinstance(self.weights, os.PathLike) else self.weights
            if not isinstance(weights, str) or not weights.strip():
                raise InputError(
                    f"{_ANY_SPACE}.weights must be the path of a local ResNet-50 weights file, got {self.weights!r}; "
                    "remove the key to train an encoder on the real images"
                )
            object.__setattr__(self, "weights", weights)
        _int(self.steps, "steps", 1)
        # Batch norm and the Barlow Twins standardization need at least two images a batch.
        _int(self.batch_size, "batch_size", 2)
        _int(self.feature_dim, "feature_dim", 1)
        _int(self.projector_dim, "projector_dim", 1)
        object.__setattr__(self, "lr", _float(self.lr, "lr", positive=True))
        object.__setattr__(self, "weight_decay", _float(self.weight_decay, "weight_decay", positive=False))
        object.__setattr__(self, "barlow_lambda", _float(self.barlow_lambda, "barlow_lambda", positive=False))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", _ints(self.image_size, "image_size", MIN_IMAGE_SIDE, 2))
        if self.resize_filter not in FILTERS:
            raise InputError(
                f"{_ANY_SPACE}.resize_filter = {self.resize_filter!r} is not one of {', '.join(FILTERS)}"
            )
        object.__setattr__(self, "widths", _ints(self.widths, "widths", 1, None))

    @classmethod
    def from_dict(cls, space: str, data: Mapping[str, Any], *, where: str = "", key: str | None = None,
                  label: Label | None = None) -> EncoderSettings:
        """Settings from the config table ``encoders.<space>``, checked by :func:`manifpt_core.settings_loader.load`.

        Errors name ``encoders.<space>.<key>`` (or ``<key>.<name>`` when ``key`` is given), the value
        and ``where`` the table came from; ``label`` maps a key path to the name shown.
        """
        if space not in SPACES:
            raise InputError(f"unknown learned space {space!r}; valid spaces: {', '.join(SPACES)}")
        key = f"encoders.{space}" if key is None else key
        shown = label(key) if label else key

        def make(**values: Any) -> EncoderSettings:
            try:
                return cls(**values)
            except InputError as err:
                raise InputError(str(err).replace(_ANY_SPACE, shown)) from None

        return load(cls, data, where, key=key, label=label, make=make)

    @property
    def trained(self) -> bool:
        """True when the encoder is trained on the real images (no weights file)."""
        return self.weights is None

    def settings(self) -> dict[str, Any]:
        """The settings that change the encoder, JSON-safe; they enter fingerprints and the space card.

        With a weights file only ``image_size`` and ``resize_filter`` matter here:
        the file enters by its content (hash it, e.g. with
        :func:`manifpt_core.store.hashing.file_hash`), not by its path, so moving
        it recomputes nothing. Without, every training setting does.
        """
        if not self.trained:
            return {"origin": "weights", "arch": "resnet50", "image_size": list(self.image_size or RESNET50_SIZE),
                    "resize_filter": self.resize_filter}
        out = dataclasses.asdict(self)
        del out["weights"]
        out["image_size"] = None if self.image_size is None else list(self.image_size)
        out["widths"] = list(self.widths)
        return {"origin": "trained", **out}
