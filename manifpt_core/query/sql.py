"""SQL over the store with DuckDB: views on the store's Parquet files, nothing copied, nothing written.

Views (each created only when its files exist):

- ``samples``: every dataset's feature table (``features/samples.parquet``), with a ``dataset`` column;
- ``predictions``: one row per test sample, method and seed (``features/predictions.parquet``);
- ``manifests``: every source's manifest of every dataset (``manifests/<source>.parquet``);
- ``queries``: every query set's ``attribution.parquet``, with a ``query_set`` column;
- per dataset, the schema ``<dataset>`` holds ``samples``, ``predictions`` and ``manifests`` of that dataset alone.

Only read statements run (SELECT, WITH … SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from manifpt_core.errors import InputError
from manifpt_core.store import Home, Layout
from manifpt_core.store.layout import QUERY_RESULT

READ_ONLY = {"SELECT", "EXPLAIN"}  # DuckDB's statement types that only read (DESCRIBE/SHOW/SUMMARIZE are SELECTs)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(_literal(str(p)) for p in paths) + "]"


@dataclass
class StoreSQL:
    """A DuckDB connection (in memory) with views over one home's store."""

    connection: duckdb.DuckDBPyConnection
    views: list[str]

    def query(self, statement: str) -> pa.Table:
        """The result of one read statement as a pyarrow table; a bad statement is an InputError carrying
        DuckDB's message and the views there are."""
        return run_query(self, statement)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> StoreSQL:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(home: Home | str | Path, datasets: Sequence[str]) -> StoreSQL:
    """Views over the store of ``home`` for ``datasets`` (and its query sets)."""
    home = home if isinstance(home, Home) else Home(Path(home))
    con = duckdb.connect(":memory:")
    views: list[str] = []
    union: dict[str, list[str]] = {"samples": [], "predictions": [], "manifests": []}
    for dataset in datasets:
        layout = Layout(home.store_root, dataset)
        files = {"samples": [layout.samples_table], "predictions": [layout.predictions_table],
                 "manifests": sorted((layout.base / "manifests").glob("*.parquet"))}
        schema_made = False
        for view, paths in files.items():
            paths = [p for p in paths if p.is_file()]
            if not paths:
                continue
            if not schema_made:
                con.execute(f"CREATE SCHEMA {_quote(dataset)}")
                schema_made = True
            select = f"SELECT * FROM read_parquet({_files(paths)}, union_by_name = true)"
            con.execute(f"CREATE VIEW {_quote(dataset)}.{view} AS {select}")
            views.append(f"{dataset}.{view}")
            union[view].append(f"SELECT {_literal(dataset)} AS dataset, * FROM read_parquet({_files(paths)}, "
                               "union_by_name = true)")
    for view, selects in union.items():
        if selects:
            con.execute(f"CREATE VIEW {view} AS " + " UNION ALL BY NAME ".join(selects))
            views.append(view)
    results = sorted(p for p in home.queries.glob(f"*/{QUERY_RESULT}") if p.is_file()) if home.queries.is_dir() \
        else []
    if results:
        selects = [f"SELECT {_literal(p.parent.name)} AS query_set, * FROM read_parquet({_literal(str(p))})"
                   for p in results]
        con.execute("CREATE VIEW queries AS " + " UNION ALL BY NAME ".join(selects))
        views.append("queries")
    return StoreSQL(con, sorted(views))


def run_query(db: StoreSQL, statement: str) -> pa.Table:
    """Run one read-only statement (see the module docstring)."""
    where = f"views: {', '.join(db.views) or 'none (materialize the feature table first: manifpt run)'}"
    try:
        statements = duckdb.extract_statements(statement)
    except duckdb.Error as err:
        raise InputError(f"invalid SQL: {err}\n{where}") from None
    if len(statements) != 1:
        raise InputError(f"give exactly one SQL statement, got {len(statements)}; {where}")
    kind = statements[0].type.name
    if kind not in READ_ONLY:
        raise InputError(f"only read statements run over the store (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, "
                         f"EXPLAIN), not {kind}; to write a result use --export FILE.parquet|.csv")
    try:
        relation = db.connection.sql(statement)
        if relation is None:
            return pa.table({})
        to_table = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
        return to_table()
    except duckdb.Error as err:
        raise InputError(f"{type(err).__name__}: {err}\n{where}") from None
