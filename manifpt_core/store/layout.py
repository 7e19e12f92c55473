"""Where each product lives: the only module that builds store paths.

``Home`` is a user's folder (``store/`` for the feature store, ``dagster/`` for
the Dagster instance); ``Layout`` names every product of one dataset under the
store root. Names are checked here, since they become directory names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from manifpt_core.errors import InputError
from manifpt_core.names import REAL, Method, check_model_name, check_name

CROSS_DIR = "cross_dataset"  # beside the datasets under the store root
RECORD_FILE = "record.json"  # the record of an output that is a folder of files
INDEX_FILE = "index.faiss"
CARD_FILE = "card.json"
ENCODER_FILE = "encoder.pt"
CHECKPOINT_FILE = "checkpoint.pt"
GRID_FILE = "samples.png"
METRICS_FILE = "metrics.json"
REPORT_JSON, REPORT_MD = "report.json", "report.md"
SAMPLES_FILE, PREDICTIONS_FILE = "samples.parquet", "predictions.parquet"
QUERY_RESULT = "attribution.parquet"  # a query set's output, beside its images
QUERY_HIDDEN = ".manifpt"  # a query set's figures and record (hidden: never read as query images)
IMAGES_MANIFEST = "manifest.parquet"  # a source's manifest inside its image store, committed with the images
FILE_HASHES_DIR = ".file_hashes"  # per-file content hashes of observed folders, under the store root (hidden)


@dataclass(frozen=True)
class Home:
    """A manifpt home folder: ``store/`` (the feature store) and ``dagster/`` (run history, schedules)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).absolute())

    @property
    def store_root(self) -> Path:
        return self.path / "store"

    @property
    def dagster(self) -> Path:
        return self.path / "dagster"

    @property
    def cross_dataset(self) -> Path:
        return cross_dataset_dir(self.store_root)

    @property
    def cross_dataset_report(self) -> Path:
        return self.cross_dataset / REPORT_MD

    @property
    def queries(self) -> Path:
        """Query sets: one folder of images each (``queries/<name>/``), attributed by the query asset."""
        return self.path / "queries"

    def query_set(self, name: str) -> Path:
        return self.queries / check_name("query set", name)

    def query_result(self, name: str) -> Path:
        return self.query_set(name) / QUERY_RESULT

    def query_extras(self, name: str) -> Path:
        """A query set's record and thumbnail grid, in a hidden folder beside its images."""
        return self.query_set(name) / QUERY_HIDDEN


def cross_dataset_dir(store_root: str | Path) -> Path:
    """The cross-dataset report: beside the datasets, under the store root."""
    return Path(store_root).absolute() / CROSS_DIR


def file_hashes_dir(store_root: str | Path) -> Path:
    """The per-file hash caches of the observed folders (one file per folder), beside the datasets: a folder
    (a real source, a model folder) may be read by several datasets, and a query set by all of them."""
    return Path(store_root).absolute() / FILE_HASHES_DIR


def check_source_name(source: str) -> str:
    """``real`` or a generative model's name."""
    return source if source == REAL else check_model_name(source)


@dataclass(frozen=True)
class Layout:
    """Paths of one dataset's products under the store root (the layout is in the README)."""

    root: Path
    dataset: str

    def __post_init__(self) -> None:
        check_name("dataset", self.dataset)
        if self.dataset == CROSS_DIR:
            raise InputError(f"a dataset named {CROSS_DIR!r} would share its folder with the cross-dataset report; "
                             "rename the dataset")
        object.__setattr__(self, "root", Path(self.root).absolute())

    @property
    def base(self) -> Path:
        return self.root / self.dataset

    def source_manifest(self, source: str) -> Path:
        """The published copy of a source's manifest (read by SQL); the one committed with the images is
        :meth:`images_manifest`."""
        return self.base / "manifests" / f"{check_source_name(source)}.parquet"

    def images_manifest(self, source: str) -> Path:
        """A source's manifest inside its image store, committed in the same atomic step as the images."""
        return self.images(source) / IMAGES_MANIFEST

    def images(self, source: str) -> Path:
        return self.base / "images" / f"{check_source_name(source)}.zarr"

    def generator(self, model: str) -> Path:
        return self.base / "generators" / check_model_name(model)

    def checkpoint(self, model: str) -> Path:
        """A trained zoo entry's weights."""
        return self.generator(model) / CHECKPOINT_FILE

    def generator_grid(self, model: str) -> Path:
        """A trained zoo entry's preview grid of samples."""
        return self.generator(model) / GRID_FILE

    def space(self, space: str) -> Path:
        return self.base / "spaces" / check_name("space", space)

    def encoder(self, space: str) -> Path:
        """A learned space's encoder file."""
        return self.space(space) / ENCODER_FILE

    def embeddings(self, space: str, source: str) -> Path:
        return self.base / "embeddings" / check_name("space", space) / f"{check_source_name(source)}.zarr"

    def index(self, space: str) -> Path:
        return self.base / "index" / check_name("space", space)

    def index_file(self, space: str) -> Path:
        return self.index(space) / INDEX_FILE

    def artifacts(self, space: str, source: str) -> Path:
        return self.base / "artifacts" / check_name("space", space) / f"{check_source_name(source)}.zarr"

    def attributor(self, method: str) -> Path:
        """An attributor's folder, by its method's canonical name (``rgb``, ``rgb-knn``, ``raw``)."""
        return self.base / "attributors" / check_name("method", method)

    def baseline(self, name: str) -> Path:
        return self.base / "baselines" / check_name("baseline", name)

    def method(self, method: Method) -> Path:
        """Where a method's networks, metrics and figures live: ``attributors/<method>`` or ``baselines/<name>``."""
        return self.baseline(method.baseline) if method.is_baseline else self.attributor(str(method))

    def metrics(self, method: Method) -> Path:
        return self.method(method) / METRICS_FILE

    def weights(self, method: Method, seed: int) -> Path:
        """One seed's network of a method."""
        return self.method(method) / f"seed{seed}.pt"

    @property
    def reports(self) -> Path:
        return self.base / "reports"

    @property
    def robustness(self) -> Path:
        """Every method's test accuracy on post-processed test images (``robustness.json``, a figure), and the
        attributors trained with the other ``attributor.augment`` setting to compare with."""
        return self.base / "robustness"

    @property
    def report_json(self) -> Path:
        return self.reports / REPORT_JSON

    @property
    def report_md(self) -> Path:
        return self.reports / REPORT_MD

    @property
    def features(self) -> Path:
        """The feature table: one row a stored sample (``samples.parquet``), one a test prediction and seed
        (``predictions.parquet``)."""
        return self.base / "features"

    @property
    def samples_table(self) -> Path:
        return self.features / SAMPLES_FILE

    @property
    def predictions_table(self) -> Path:
        return self.features / PREDICTIONS_FILE

    def stored_sources(self) -> list[str]:
        """The sources with an image store here, ``real`` first (hidden leftovers of unfinished writes skipped)."""
        folder = self.base / "images"
        names = sorted(p.name[: -len(".zarr")] for p in folder.glob("*.zarr") if not p.name.startswith(".")) \
            if folder.is_dir() else []
        return sorted(names, key=lambda name: (name != REAL, name))

    def model_paths(self, model: str, spaces: tuple[str, ...]) -> list[Path]:
        """Everything the store holds for one generative model (its generator, images, manifest, and its
        embeddings and artifacts in ``spaces``), whether or not each exists."""
        return [self.generator(model), self.images(model), self.source_manifest(model),
                *(self.embeddings(space, model) for space in spaces), *(self.artifacts(space, model) for space in spaces)]
