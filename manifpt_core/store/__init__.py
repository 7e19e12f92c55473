"""The store: Zarr arrays, Parquet manifests, hashing and atomic commit."""

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
from manifpt_core.store.hashing import (
    ArrayHasher,
    array_bytes_hash,
    canonical_json,
    combine_hashes,
    fingerprint,
)
from manifpt_core.store.layout import Store, check_name, default_home
from manifpt_core.store.manifest import (
    assign_splits,
    build_table,
    manifest_record,
    read_manifest,
    write_manifest,
)

__all__ = [
    "ArrayHasher",
    "RowWriter",
    "Store",
    "array_bytes_hash",
    "assign_splits",
    "atomic_path",
    "remove_paths",
    "build_table",
    "canonical_json",
    "check_name",
    "combine_hashes",
    "create_rows",
    "default_home",
    "fingerprint",
    "iter_blocks",
    "manifest_record",
    "open_array",
    "prefetch",
    "read_manifest",
    "read_record",
    "write_behind",
    "write_manifest",
    "write_record",
]
