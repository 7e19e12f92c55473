"""The store: paths (``Layout``), typed views and records (``Store``), Zarr arrays, Parquet manifests,
hashing, caching and atomic commit."""

from manifpt_core.store.arrays import (
    RowWriter,
    create_rows,
    iter_blocks,
    open_array,
    prefetch,
    read_record,
    write_behind,
    write_record,
)
from manifpt_core.store.atomic import atomic_path, remove_paths
from manifpt_core.store.cache import Outcome, load_record, require_record, run_cached
from manifpt_core.store.dataset import (
    SPLIT_NAMES,
    Artifacts,
    RealSource,
    Source,
    Store,
    class_names,
)
from manifpt_core.store.hashing import (
    ArrayHasher,
    array_bytes_hash,
    canonical_json,
    combine_hashes,
    fingerprint,
)
from manifpt_core.store.layout import Home, Layout, cross_dataset_dir
from manifpt_core.store.manifest import (
    assign_splits,
    build_table,
    manifest_record,
    read_manifest,
    write_manifest,
)

__all__ = [
    "SPLIT_NAMES",
    "ArrayHasher",
    "Artifacts",
    "Home",
    "Layout",
    "Outcome",
    "RealSource",
    "RowWriter",
    "Source",
    "Store",
    "array_bytes_hash",
    "assign_splits",
    "atomic_path",
    "build_table",
    "canonical_json",
    "class_names",
    "combine_hashes",
    "create_rows",
    "cross_dataset_dir",
    "fingerprint",
    "iter_blocks",
    "load_record",
    "manifest_record",
    "open_array",
    "prefetch",
    "read_manifest",
    "read_record",
    "remove_paths",
    "require_record",
    "run_cached",
    "write_behind",
    "write_manifest",
    "write_record",
]
