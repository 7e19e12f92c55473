"""Parquet manifests: one row a sample (id, source, row, path, content hash, split, size, label)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifpt_core.errors import StoreError
from manifpt_core.store.atomic import atomic_path
from manifpt_core.store.hashing import text_hash

SPLITS = ("reference", "train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.2, 0.1)

SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("row", pa.int64()),
        ("path", pa.string()),
        ("content_hash", pa.string()),
        ("split", pa.string()),
        ("channels", pa.int32()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("label", pa.int64()),
    ]
)


def assign_splits(sample_ids: Sequence[str], fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> list[str]:
    """Deterministic train/val/test split with exact 7:2:1 counts.

    Samples are ranked by a hash of their id, so the split of a sample never
    depends on the order of ingestion or on the other sources in the store.
    """
    n = len(sample_ids)
    order = sorted(range(n), key=lambda i: text_hash(sample_ids[i]))
    n_train = round(fractions[0] * n)
    n_val = round(fractions[1] * n)
    splits = [""] * n
    for rank, i in enumerate(order):
        splits[i] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return splits


def build_table(
    source: str,
    paths: Sequence[str],
    content_hashes: Sequence[str],
    splits: Sequence[str],
    shape: tuple[int, int, int],
    labels: Sequence[int] | np.ndarray | None = None,
) -> pa.Table:
    """Manifest rows for the N samples of one source, in store row order."""
    n = len(paths)
    if not (len(content_hashes) == len(splits) == n):
        raise StoreError(f"manifest columns differ in length: {n} paths, {len(content_hashes)} hashes, {len(splits)} splits")
    bad = sorted(set(splits) - set(SPLITS))
    if bad:
        raise StoreError(f"unknown split values {bad}; valid: {SPLITS}")
    label_col = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    c, h, w = shape
    return pa.table(
        {
            "sample_id": [f"{source}/{i}" for i in range(n)],
            "source": [source] * n,
            "row": np.arange(n, dtype=np.int64),
            "path": list(paths),
            "content_hash": list(content_hashes),
            "split": list(splits),
            "channels": np.full(n, c, dtype=np.int32),
            "height": np.full(n, h, dtype=np.int32),
            "width": np.full(n, w, dtype=np.int32),
            "label": label_col,
        },
        schema=SCHEMA,
    )


def write_manifest(table: pa.Table, path: Path, record: dict[str, Any]) -> None:
    """Write a manifest atomically, with the provenance record in the Parquet schema metadata."""
    table = table.replace_schema_metadata({b"manifpt": json.dumps(record).encode()})
    with atomic_path(Path(path)) as tmp:
        pq.write_table(table, tmp)


def read_manifest(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a manifest; a missing one is a StoreError naming the step to run."""
    if not Path(path).exists():
        raise StoreError(f"no manifest at {path}: materialize the ingestion step first")
    return pq.read_table(path, columns=list(columns) if columns else None)


def manifest_record(path: Path) -> dict[str, Any] | None:
    """The provenance record stored in a manifest's schema metadata, or None if absent."""
    if not Path(path).exists():
        return None
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"manifpt")
    return json.loads(raw) if raw else None


def publish_manifest(inner: Path, published: Path) -> bool:
    """Copy the manifest committed inside an image store (``inner``) to its published path, atomically, when the
    published one is missing or has another fingerprint or content hash; True when it was copied.

    A missing ``inner`` (an image store written before manifests moved inside it) publishes nothing.
    """
    record = manifest_record(inner)
    if record is None:
        return False
    current = manifest_record(published)
    keys = ("fingerprint", "content_hash")
    if current is not None and all(current.get(k) == record.get(k) for k in keys):
        return False
    with atomic_path(Path(published)) as tmp:
        shutil.copyfile(inner, tmp)
    return True
