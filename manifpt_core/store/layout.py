"""Where each product lives in the store: readable names under one root."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from manifpt_core.errors import InputError

DEFAULT_HOME = ".manifpt"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
NAME_RULE = re.compile(NAME_PATTERN)


def check_name(kind: str, name: str) -> str:
    """Names become directory names and partition keys, so they are kept to a safe alphabet."""
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise InputError(
            f"invalid {kind} name {name!r}: use 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
        )
    return name


def default_home() -> Path:
    """``$MANIFPT_HOME`` if set, else ``./.manifpt`` (the store lives in ``<home>/store``)."""
    return Path(os.environ.get("MANIFPT_HOME", DEFAULT_HOME)).absolute()


@dataclass(frozen=True)
class Store:
    """Paths of one dataset's products under the store root (layout in the README)."""

    root: Path
    dataset: str

    def __post_init__(self) -> None:
        check_name("dataset", self.dataset)
        object.__setattr__(self, "root", Path(self.root).absolute())

    @property
    def base(self) -> Path:
        return self.root / self.dataset

    @property
    def manifest(self) -> Path:
        return self.base / "manifest.parquet"

    def source_manifest(self, source: str) -> Path:
        return self.base / "manifests" / f"{check_name('source', source)}.parquet"

    def images(self, source: str) -> Path:
        return self.base / "images" / f"{check_name('source', source)}.zarr"

    def generator(self, model: str) -> Path:
        return self.base / "generators" / check_name("model", model)

    def space(self, space: str) -> Path:
        return self.base / "spaces" / check_name("space", space)

    def embeddings(self, space: str, source: str) -> Path:
        return self.base / "embeddings" / check_name("space", space) / f"{check_name('source', source)}.zarr"

    def index(self, space: str) -> Path:
        return self.base / "index" / check_name("space", space)

    def artifacts(self, space: str, source: str) -> Path:
        return self.base / "artifacts" / check_name("space", space) / f"{check_name('source', source)}.zarr"

    def attributor(self, space: str) -> Path:
        return self.base / "attributors" / check_name("space", space)

    def model_paths(self, model: str, spaces: tuple[str, ...]) -> list[Path]:
        """Everything the store holds for one generative model (its generator, images, manifest, and its
        embeddings and artifacts in ``spaces``), whether or not each exists."""
        return [self.generator(model), self.images(model), self.source_manifest(model),
                *(self.embeddings(space, model) for space in spaces), *(self.artifacts(space, model) for space in spaces)]

    def baseline(self, name: str) -> Path:
        return self.base / "baselines" / check_name("baseline", name)

    @property
    def reports(self) -> Path:
        return self.base / "reports"
