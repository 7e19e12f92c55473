"""Querying the materialized store: which model made an image, the feature table, SQL, lazy arrays.

Everything returns pyarrow tables (``.to_pandas()``, ``polars.from_arrow``, DuckDB) or Dask arrays over the Zarr
stores (nothing is read until computed)::

    from manifpt_core import query
    table = query.attribute(store, settings, ["suspect.png"])      # one row per image and method
    samples = query.feature_table(store)                           # one row per stored sample
    artifacts = query.lazy_array(store, "dcgan", "artifacts", space="rgb")
    with query.connect(home, ["fmnist_clothing"]) as db:
        db.query("SELECT source, avg(rgb_nn_dist) FROM samples GROUP BY source")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dask.array as da
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifpt_core.config import Settings
from manifpt_core.errors import InputError, StoreError
from manifpt_core.names import Method
from manifpt_core.query.engine import ImageAnswer, MethodAnswer, NearestReal, QueryEngine, default_methods
from manifpt_core.query.images import QueryImage, collect_paths, read_query_image, read_query_images
from manifpt_core.query.results import JSON_SCHEMA, TABLE_SCHEMA, render_text, save_views, to_json, to_table
from manifpt_core.query.sql import StoreSQL, connect, run_query
from manifpt_core.spaces import get_space
from manifpt_core.store import Store, open_array
from manifpt_core.store.derived import DERIVE_ROWS, DerivedArtifacts, DerivedEmbeddings
from manifpt_core.store.records import ArtifactsSummary

ARRAYS = ("images", "embeddings", "artifacts")


def attribute_images(engine: QueryEngine, paths: Sequence[str | os.PathLike[str]], resize: str | None = None,
                     save: str | os.PathLike[str] | None = None) -> list[ImageAnswer]:
    """Attribute image files (and the images in folders) with a loaded engine; ``save`` writes PNG views."""
    queries = read_query_images(collect_paths(paths), engine.shape, engine.store.dataset, resize)
    answers = engine.attribute(queries)
    if save is not None:
        save_answers(engine, queries, answers, Path(save))
    return answers


def attribute(store: Store, settings: Settings, paths: Sequence[str | os.PathLike[str]],
              methods: Sequence[Method | str] | None = None, resize: str | None = None,
              device: str | None = None) -> pa.Table:
    """Which model made each image: one row per image and method (see ``TABLE_SCHEMA`` and docs/querying.md)."""
    return to_table(attribute_images(QueryEngine(store, settings, methods, device), paths, resize))


def save_answers(engine: QueryEngine, queries: Sequence[QueryImage], answers: Sequence[ImageAnswer],
                 folder: Path) -> list[Path]:
    """For each attributed image: the image, its nearest real image per space and its artifact in the image-shaped
    spaces, as PNGs under ``folder`` (named after the image, numbered to stay apart)."""
    real = engine.store.real.images()
    kind = engine.settings.artifacts.kinds[0]
    written = []
    for i, (q, a) in enumerate(zip(queries, answers)):
        if not q.ok:
            continue
        out = engine.compute(q.pixels[None])
        nearest = {n.space: np.asarray(real[n.id]) for n in a.nearest_real}
        artifacts = {space: arrays[ArtifactsSummary.ARRAYS[kind]][0].reshape(engine.shape)
                     for space, arrays in out.arrays.items() if get_space(space).image_shaped}
        written += save_views(folder, f"{i:04d}_{Path(q.path).stem}", q.pixels, nearest, artifacts)
    return written


def feature_table(store: Store, columns: Sequence[str] | None = None) -> pa.Table:
    """The dataset's feature table (``features/samples.parquet``): one row per stored sample."""
    return _read(store.paths.samples_table, columns)


def predictions_table(store: Store, columns: Sequence[str] | None = None) -> pa.Table:
    """One row per test sample, method and seed (``features/predictions.parquet``)."""
    return _read(store.paths.predictions_table, columns)


def feature_rows(store: Store, settings: Settings, space: str | None = None, source: str | None = None,
                 limit: int | None = None) -> pa.Table:
    """Rows of the feature table, optionally of one source and with one space's columns (``manifpt show``)."""
    if space is not None and space not in settings.spaces:
        raise InputError(f"unknown space {space!r} in dataset {store.dataset!r}; spaces: {list(settings.spaces)}")
    table = feature_table(store)
    if source is not None:
        sources = sorted(set(table.column("source").to_pylist()))
        if source not in sources:
            raise InputError(f"no source {source!r} in the feature table of {store.dataset!r}; sources: {sources}")
        table = table.filter(pc.equal(table.column("source"), source))
    if space is not None:
        others = tuple(f"{s}_" for s in settings.spaces if s != space)
        table = table.select([c for c in table.column_names if not c.startswith(others)])
    return table.slice(0, limit) if limit is not None else table


def _read(path: Path, columns: Sequence[str] | None) -> pa.Table:
    if not path.is_file():
        raise StoreError(f"no feature table at {path}: materialize the feature_table asset (manifpt run, or the "
                         "UI) first")
    try:
        return pq.read_table(path, columns=list(columns) if columns else None)
    except pa.ArrowInvalid as err:
        raise InputError(f"{err}; columns of {path.name}: {pq.read_schema(path).names}") from None


def lazy_array(store: Store, source: str, what: str = "images", space: str | None = None,
               name: str = "artifact") -> da.Array:
    """A Dask array over a stored Zarr array, read chunk by chunk when computed.

    ``what``: ``images`` (uint8 (N, C, H, W)), ``embeddings`` (float32 (N, D), needs ``space``) or ``artifacts``
    (needs ``space``; ``name`` is one of its arrays: ``artifact``, ``knn_artifact``, ``nn_id``, ``nn_dist``,
    ``knn_ids``, ``knn_dist``, ``query_row``).
    """
    if what not in ARRAYS:
        raise InputError(f"what = {what!r}: choose one of {list(ARRAYS)}")
    src = store.source(source)
    if what == "images":
        path, array = store.paths.images(src.name), None
    else:
        if space is None:
            raise InputError(f"{what} are per space: pass space=, one of the dataset's spaces")
        path = (store.paths.embeddings if what == "embeddings" else store.paths.artifacts)(space, src.name)
        array = name if what == "artifacts" else None
    if not path.exists():
        raise StoreError(f"nothing at {path}: materialize the {what} of {source!r} first")
    if what == "images":
        return da.from_zarr(open_array(path))
    values = src.artifacts(space).array(name) if what == "artifacts" else src.embeddings(space)
    if isinstance(values, (DerivedArtifacts, DerivedEmbeddings)):  # computed from the images, rows at a time
        return da.from_array(values, chunks=(DERIVE_ROWS, values.shape[1]), asarray=False)
    return da.from_zarr(values)


__all__ = [
    "ARRAYS",
    "JSON_SCHEMA",
    "TABLE_SCHEMA",
    "ImageAnswer",
    "MethodAnswer",
    "NearestReal",
    "QueryEngine",
    "QueryImage",
    "StoreSQL",
    "attribute",
    "attribute_images",
    "collect_paths",
    "connect",
    "default_methods",
    "feature_rows",
    "feature_table",
    "lazy_array",
    "predictions_table",
    "read_query_image",
    "read_query_images",
    "render_text",
    "run_query",
    "save_answers",
    "to_json",
    "to_table",
]
