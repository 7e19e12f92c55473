"""The typed read API of one dataset's store: its sources, their images, manifests, embeddings and artifacts,
and the typed records of what every step wrote.

The steps read their inputs through it, and so can a user::

    store = Store(root, "fmnist_clothing")
    store.real.reference_images()                 # uint8 (n_reference, C, H, W)
    store.model("dcgan").manifest()               # pyarrow.Table
    store.model("dcgan").embeddings("ssl")[:10]   # float32 (10, D), read from Zarr
    store.model("dcgan").artifacts("rgb").nn_id[:]
    store.attributor(Method.artifacts("rgb")).accuracy_mean
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import zarr

from manifpt_core.errors import InputError, StoreError
from manifpt_core.names import REAL, Method, check_model_name
from manifpt_core.store.arrays import open_array
from manifpt_core.store.cache import require_record
from manifpt_core.store.derived import DerivedArtifacts, DerivedEmbeddings
from manifpt_core.store.layout import Layout
from manifpt_core.store.manifest import read_manifest
from manifpt_core.store.records import (
    ArtifactsSummary,
    AttributorMetrics,
    EmbeddingsSummary,
    GeneratorSummary,
    ImagesSummary,
    IndexSummary,
    Record,
    Report,
    RobustnessSummary,
    SpaceSummary,
)

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Store:
    """One dataset's store under a root folder: paths (``paths``) and typed views of what is stored."""

    root: Path
    dataset: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())
        Layout(self.root, self.dataset)  # checks the dataset's name

    @property
    def paths(self) -> Layout:
        return Layout(self.root, self.dataset)

    # Sources -------------------------------------------------------------------------------------

    @property
    def real(self) -> RealSource:
        return RealSource(self, REAL)

    def model(self, name: str) -> Source:
        """A generative model's source; ``real`` and malformed names are refused."""
        return Source(self, check_model_name(name))

    def source(self, name: str) -> Source:
        """``real`` or a generative model."""
        return self.real if name == REAL else self.model(name)

    def models(self) -> list[str]:
        """The generative models whose images are stored in this dataset, by name."""
        return [name for name in self.paths.stored_sources() if name != REAL]

    def classes(self, models: Sequence[str]) -> list[Source]:
        """The attribution classes in label order: the real class first, then the models sorted by name."""
        return [self.source(name) for name in class_names(models)]

    # Records of the per-dataset steps ---------------------------------------------------------------

    def generator(self, model: str) -> Record[GeneratorSummary]:
        return require_record(self.paths.generator(model), GeneratorSummary, f"the generator {model!r}")

    def space(self, space: str) -> Record[SpaceSummary]:
        return require_record(self.paths.space(space), SpaceSummary, f"the embedding space {space!r}")

    def index(self, space: str) -> Record[IndexSummary]:
        return require_record(self.paths.index(space), IndexSummary, f"the reference index of {space!r}")

    def attributor_record(self, method: Method) -> Record[AttributorMetrics]:
        """The record of a method's attributors (artifacts or control) or of a baseline."""
        path = self.method_dir(method)
        return require_record(path, AttributorMetrics, f"the {'baseline' if method.is_baseline else 'attributor'} "
                                                       f"{str(method)!r}")

    def attributor(self, method: Method) -> AttributorMetrics:
        """The test metrics of a method (an attributor, the control or a baseline)."""
        path = self.paths.metrics(method)
        if not path.is_file():
            raise StoreError(f"no metrics at {path}: materialize {str(method)!r} first")
        return AttributorMetrics.from_dict(json.loads(path.read_text()))

    def method_dir(self, method: Method) -> Path:
        """Where a method's networks, metrics and figures live."""
        return self.paths.method(method)

    def robustness(self) -> Record[RobustnessSummary]:
        """The record of the robustness step (every method's accuracy on post-processed test images)."""
        return require_record(self.paths.robustness, RobustnessSummary, "the robustness evaluation")

    def report(self) -> Report:
        path = self.paths.report_json
        if not path.is_file():
            raise StoreError(f"no report at {path}: materialize the attribution report first")
        return Report.from_dict(json.loads(path.read_text()))


def class_names(models: Sequence[str]) -> list[str]:
    """Class names in label order: ``real`` first, then the models sorted by name."""
    if not models:
        raise InputError("attribution needs at least one generative model; add a zoo entry or a model folder")
    return [REAL, *sorted(check_model_name(m) for m in models)]


@dataclass(frozen=True)
class Source:
    """One source of a dataset (``real`` or a generative model): its images, manifest, embeddings, artifacts."""

    store: Store
    name: str

    @property
    def is_real(self) -> bool:
        return self.name == REAL

    @property
    def record(self) -> Record[ImagesSummary]:
        return require_record(self.store.paths.images(self.name), ImagesSummary,
                              f"the images of {self.name!r} (ingestion)")

    @property
    def summary(self) -> ImagesSummary:
        return self.record.summary

    def images(self) -> zarr.Array:
        """Every stored image, uint8 (N, C, H, W), read lazily from Zarr."""
        return open_array(self.store.paths.images(self.name))

    def manifest(self, columns: Sequence[str] | None = None) -> pa.Table:
        """One row a sample, in store row order (sample_id, source, row, path, content_hash, split, …): the manifest
        committed with the images (an image store written before manifests moved inside it: the published one)."""
        inner = self.store.paths.images_manifest(self.name)
        return read_manifest(inner if inner.is_file() else self.store.paths.source_manifest(self.name), columns)

    def query_rows(self) -> np.ndarray:
        """The rows that are samples to attribute: every row of a model; the real class rows of ``real``."""
        summary = self.summary
        return np.arange(summary.query_start, summary.n_samples)

    def query_images(self) -> np.ndarray:
        return np.asarray(self.images()[self.summary.query_start:])

    def splits(self, rows: np.ndarray) -> np.ndarray:
        """The train / val / test split of each of ``rows`` (from the manifest)."""
        split_of_row = np.asarray(self.manifest(["split"]).column("split").to_pylist(), dtype=object)
        return split_of_row[rows]

    def count(self, split: str) -> int:
        """How many of its samples are in ``split``."""
        return self.manifest(["split"]).column("split").to_pylist().count(split)

    def embeddings(self, space: str) -> zarr.Array | DerivedEmbeddings:
        """Its images embedded in ``space``: float32 (N, D), every row of the image store (derived on read from the
        images in a pixel-like space above ``derive_above_gb``)."""
        path = self.store.paths.embeddings(space, self.name)
        if not path.exists():
            return open_array(path)  # the error naming the step to run
        summary = self.embeddings_record(space).summary
        if summary.derived:
            return DerivedEmbeddings(self.images(), space, summary.dim)
        return open_array(path)

    def embeddings_record(self, space: str) -> Record[EmbeddingsSummary]:
        return require_record(self.store.paths.embeddings(space, self.name), EmbeddingsSummary,
                              f"the {self.name!r} embeddings in {space!r}")

    def artifacts(self, space: str) -> Artifacts:
        return Artifacts(self, space)


@dataclass(frozen=True)
class RealSource(Source):
    """The real images: the reference rows (the manifold estimate, the only ones indexed) come first."""

    @property
    def n_reference(self) -> int:
        return self.summary.n_reference

    def reference_images(self) -> np.ndarray:
        return np.asarray(self.images()[: self.n_reference])

    def reference_embeddings(self, space: str) -> np.ndarray:
        """The indexed vectors of ``space``: the reference rows of the real embeddings (row = index id)."""
        return np.ascontiguousarray(self.embeddings(space)[: self.n_reference])

    def reference_labels(self) -> np.ndarray | None:
        """Class labels of the reference rows, or None when the source has none (label -1)."""
        labels = np.asarray(self.manifest(["label"]).column("label").to_pylist(), dtype=np.int64)[: self.n_reference]
        return None if (labels < 0).any() else labels


@dataclass(frozen=True)
class Artifacts:
    """A source's artifacts in one space: one row per query sample (``query_row`` gives its image row)."""

    source: Source
    space: str

    @property
    def path(self) -> Path:
        return self.source.store.paths.artifacts(self.space, self.source.name)

    @property
    def record(self) -> Record[ArtifactsSummary]:
        return require_record(self.path, ArtifactsSummary, f"the {self.source.name!r} artifacts in {self.space!r}")

    @property
    def derived(self) -> bool:
        """Whether the (n, D) artifacts are derived on read from the images (``derive_above_gb``)."""
        return bool(self.record.summary.derived)

    def array(self, name: str) -> zarr.Array | DerivedArtifacts:
        """One array: ``artifact``, ``nn_id``, ``nn_dist``, ``knn_artifact``, ``knn_ids``, ``knn_dist``,
        ``query_row`` (and ``knn_coef`` when derived); in a derived store the artifacts are computed on read."""
        kind = next((k for k, array in ArtifactsSummary.ARRAYS.items() if array == name), None)
        if kind is not None and self.derived:
            if kind not in self.record.summary.kinds:
                raise StoreError(f"no {name!r} in {self.path}: the artifact kinds stored are "
                                 f"{self.record.summary.kinds} (artifacts.kinds)")
            return DerivedArtifacts(self, kind)
        return open_array(self.path, name)

    def of_kind(self, kind: str) -> zarr.Array | DerivedArtifacts:
        """The artifacts of one kind (``nearest`` or ``knn``), (n, D)."""
        if kind not in ArtifactsSummary.ARRAYS:
            raise InputError(f"unknown artifact kind {kind!r}; kinds: {sorted(ArtifactsSummary.ARRAYS)}")
        return self.array(ArtifactsSummary.ARRAYS[kind])

    @property
    def nn_id(self) -> zarr.Array:
        return self.array("nn_id")

    @property
    def nn_dist(self) -> zarr.Array:
        return self.array("nn_dist")

    @property
    def query_row(self) -> zarr.Array:
        return self.array("query_row")

