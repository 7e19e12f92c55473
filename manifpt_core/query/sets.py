"""Query sets: a folder of images under ``<home>/queries/<name>/`` attributed in every dataset as one batch.

The result is ``queries/<name>/attribution.parquet`` (one row per image, dataset and method, the schema of
:data:`~manifpt_core.query.results.TABLE_SCHEMA`), written beside the images, and a hidden
``queries/<name>/.manifpt/`` folder with the record and a thumbnail grid of the predictions. It is recomputed
only when the images, or what attributes them in a dataset (encoders, indexes, attributors), change.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from manifpt_core.config import Settings
from manifpt_core.errors import InputError
from manifpt_core.figures import save_labelled_grid
from manifpt_core.query.engine import QueryEngine, default_methods
from manifpt_core.query.images import collect_paths, read_query_images
from manifpt_core.query.results import to_table
from manifpt_core.sources import observe_folder
from manifpt_core.store import Home, Outcome, Store, combine_hashes, run_cached
from manifpt_core.store.atomic import atomic_path
from manifpt_core.store.file_hashes import FileHashCache, Observation
from manifpt_core.store.records import QuerySetSummary

logger = logging.getLogger(__name__)

QUERY_VERSION = "1"
GRID_FILE = "predictions.png"
GRID_MAX = 64  # images shown in the thumbnail grid


def query_set_names(home: Home) -> list[str]:
    """The query sets: every folder under ``<home>/queries`` (hidden ones skipped), by name."""
    if not home.queries.is_dir():
        return []
    return sorted(p.name for p in home.queries.iterdir() if p.is_dir() and not p.name.startswith("."))


def observe_query_set(home: Home, name: str, deep: bool = False) -> Observation:
    """The content hash of a query set's images (its data version), read through the home's file hash cache
    (``deep``: every image read again); InputError when it holds none."""
    folder = home.query_set(name)
    if not folder.is_dir():
        raise InputError(f"query set {name!r}: {folder} does not exist; create it and put images in it")
    return observe_folder(folder, FileHashCache.in_store(home.store_root, deep))


def query_set_hash(home: Home, name: str) -> str:
    """The content hash of :func:`observe_query_set`."""
    return observe_query_set(home, name).content_hash


def model_inputs(store: Store, settings: Settings) -> dict[str, str]:
    """The content hashes of what attributes an image in a dataset: spaces, indexes and every method."""
    inputs = {f"space/{s}": store.space(s).content_hash for s in settings.spaces}
    inputs |= {f"index/{s}": store.index(s).content_hash for s in settings.spaces}
    inputs |= {f"method/{m}": store.attributor_record(m).content_hash for m in default_methods(settings)}
    return inputs


def attribute_query_set(home: Home, datasets: Sequence[Settings], name: str,
                        device: str | None = None) -> Outcome[QuerySetSummary]:
    """Attribute every image of the query set ``name`` in every dataset; reuse the result when nothing changed."""
    folder = home.query_set(name)
    images_hash = query_set_hash(home, name)
    inputs = {"images": images_hash}
    for settings in datasets:
        store = Store(home.store_root, settings.dataset)
        inputs |= {f"{settings.dataset}/{k}": v for k, v in model_inputs(store, settings).items()}
    result_path = home.query_result(name)

    def result_matches(fp: str) -> bool:
        if not result_path.is_file():
            return False
        meta = pq.read_schema(result_path).metadata or {}
        return json.loads(meta.get(b"manifpt", b"{}")).get("fingerprint") == fp

    def compute(tmp: Path, fp: str) -> tuple[str, QuerySetSummary]:
        paths = collect_paths([folder])
        answers = []
        first_queries = None  # the first dataset's reads: the thumbnails are drawn from them
        for settings in datasets:
            engine = QueryEngine(Store(home.store_root, settings.dataset), settings, device=device)
            queries = read_query_images(paths, engine.shape, settings.dataset)
            first_queries = queries if first_queries is None else first_queries
            answers += engine.attribute(queries)
            logger.info("query set %s: %d images attributed in %s", name, len(queries), settings.dataset)
        table = to_table(answers).replace_schema_metadata({b"manifpt": json.dumps({"fingerprint": fp}).encode()})
        with atomic_path(result_path) as out:
            pq.write_table(table, out)
        tmp.mkdir(parents=True)
        _grid(answers[: len(paths)], first_queries or [], tmp / GRID_FILE)
        unknown, predicted = {}, {}
        for settings in datasets:
            for method in default_methods(settings):
                key = f"{settings.dataset}/{method}"
                rows = [m for a in answers if a.dataset == settings.dataset for m in a.methods
                        if m.method == str(method)]
                unknown[key] = float(np.mean([m.verdict == "unknown" for m in rows])) if rows else 0.0
                predicted[key] = dict(Counter(m.predicted for m in rows))
        n_failed = len({a.image for a in answers if a.error})
        summary = QuerySetSummary(name=name, n_images=len(paths), n_failed=n_failed,
                                  datasets=[s.dataset for s in datasets],
                                  methods=sorted({str(m) for s in datasets for m in default_methods(s)}),
                                  result=str(result_path), unknown_share=unknown, predicted=predicted)
        return _table_hash(table), summary

    return run_cached(home.query_extras(name), "query", QUERY_VERSION, inputs,
                      {"datasets": [s.dataset for s in datasets]}, compute, QuerySetSummary, result_matches)


def _table_hash(table) -> str:
    return combine_hashes({"rows": json.dumps(table.to_pylist(), sort_keys=True, default=str)})


def _grid(answers, queries, path: Path) -> None:
    """Thumbnails of the first images (the pixels already read), titled with the first dataset's first method's
    answer."""
    images, labels = [], []
    for a, q in list(zip(answers, queries))[:GRID_MAX]:
        if a.error:
            continue
        m = a.methods[0]
        images.append(q.pixels)
        labels.append(f"{m.method}: {'unknown' if m.verdict == 'unknown' else m.predicted}\n{m.probability:.2f}")
    if images:
        save_labelled_grid(np.stack(images), labels, path)
