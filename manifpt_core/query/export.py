"""Writing query results: Parquet or CSV (nested columns as JSON text), atomically, and a plain text table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from manifpt_core.errors import InputError
from manifpt_core.store.atomic import atomic_path

FORMATS = (".parquet", ".csv")


def export_table(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` to ``path`` (``.parquet`` or ``.csv``) atomically; CSV holds nested values as JSON."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"cannot export to {path}: name a file ending in {' or '.join(FORMATS)}")
    with atomic_path(path, lock=False) as tmp:
        if path.suffix.lower() == ".parquet":
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(flat_table(table), tmp)
    return path


def flat_table(table: pa.Table) -> pa.Table:
    """Nested columns (lists, structs) as JSON text, the others as they are."""
    columns = []
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_nested(column.type):
            column = pa.array([None if v is None else json.dumps(v) for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def render_rows(table: pa.Table, limit: int | None = None, max_width: int = 40) -> str:
    """A plain text table of the first ``limit`` rows (long values cut to ``max_width`` characters)."""
    shown = table.slice(0, limit) if limit is not None else table
    flat = flat_table(shown)

    def cell(v) -> str:
        text = "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    rows = [[cell(v) for v in r.values()] for r in flat.to_pylist()]
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(flat.column_names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(flat.column_names, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    if table.num_rows > shown.num_rows:
        lines.append(f"({table.num_rows - shown.num_rows} more rows; --limit N shows more, --export FILE writes all)")
    lines.append(f"({table.num_rows} rows)")
    return "\n".join(lines)
