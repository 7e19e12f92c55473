"""The feature table, SQL over the store, lazy arrays, the catalog: checked against the stored arrays and the
report, and every bad input."""


import numpy as np
import pyarrow.parquet as pq
import pytest

from manifpt_core import query
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError
from manifpt_core.query.catalog import catalog, render_catalog
from manifpt_core.query.export import export_table
from manifpt_core.steps.features import materialize_feature_table
from manifpt_core.store import Home
from manifpt_core.store.layout import FILE_HASHES_DIR


def test_the_feature_table_has_one_row_per_stored_sample(query_store):
    store = query_store.store
    table = query.feature_table(store)
    n = sum(store.source(s).summary.n_samples for s in ("real", "alpha", "beta"))
    assert table.num_rows == n
    assert len(set(table.column("sample_id").to_pylist())) == n
    for prefix in ("rgb", "rgb_knn", "freq", "sl", "ssl_knn", "raw"):
        assert {f"{prefix}_pred", f"{prefix}_prob"} <= set(table.column_names)


@pytest.mark.parametrize("space", ["rgb", "ssl"])
def test_nearest_columns_equal_the_stored_artifacts(query_store, space):
    store = query_store.store
    rows = {r["sample_id"]: r for r in query.feature_table(store).to_pylist()}
    for source in ("real", "alpha"):
        src = store.source(source)
        artifacts = src.artifacts(space)
        ids = src.manifest(["sample_id"]).column("sample_id").to_pylist()
        for q, nn, dist, knn in zip(artifacts.query_row[:], artifacts.nn_id[:], artifacts.nn_dist[:],
                                    artifacts.array("knn_dist")[:]):
            row = rows[ids[q]]
            assert row[f"{space}_nn_id"] == nn and row[f"{space}_nn_sample_id"] == f"real/{nn}"
            assert row[f"{space}_nn_dist"] == pytest.approx(float(dist)) and row[f"{space}_knn_dist"] == \
                pytest.approx(float(knn))
    reference = [r for r in rows.values() if r["split"] == "reference"]
    assert len(reference) == store.real.n_reference and all(r[f"{space}_nn_id"] is None for r in reference)


def test_predictions_only_for_test_samples_and_they_agree_with_the_seeds(query_store):
    table = query.feature_table(query_store.store).to_pylist()
    assert all((r["rgb_pred"] is not None) == (r["split"] == "test") for r in table)
    stored = query.predictions_table(query_store.store).to_pylist()
    seeds = query_store.settings.seeds
    for r in [r for r in table if r["split"] == "test"][:10]:
        votes = [p["predicted"] for p in stored if p["sample_id"] == r["sample_id"] and p["method"] == "rgb"]
        assert len(votes) == len(seeds)
        if len(set(votes)) == 1:  # seeds that agree: the mean agrees too
            assert r["rgb_pred"] == votes[0]


def test_the_feature_table_is_reused_when_nothing_changed(query_store):
    outcome = materialize_feature_table(query_store.store, query_store.settings, ["alpha", "beta"])
    assert outcome.reused


def test_sql_reproduces_the_report_accuracy(query_store):
    report = {row.key: row.accuracy_mean for row in query_store.store.report().main_table}
    with query.connect(query_store.home, ["bench"]) as db:
        result = db.query("SELECT method, avg(correct::DOUBLE) AS accuracy FROM predictions GROUP BY method")
        assert {"samples", "predictions", "manifests", "bench.samples"} <= set(db.views)
        counts = db.query("SELECT source, count(*) AS n FROM manifests GROUP BY source ORDER BY source").to_pylist()
    got = {r["method"]: r["accuracy"] for r in result.to_pylist()}
    assert set(got) == {str(m) for m in query.default_methods(query_store.settings)}
    for method, accuracy in got.items():
        assert accuracy == pytest.approx(report[method], abs=1e-12)
    assert counts == [{"source": s, "n": query_store.store.source(s).summary.n_samples}
                      for s in ("alpha", "beta", "real")]


def test_the_documented_example_queries_run(query_store):
    examples = [
        # accuracy per source (the raw-image control)
        "SELECT source, avg((raw_pred = source)::DOUBLE) AS accuracy FROM samples WHERE split = 'test' "
        "GROUP BY source ORDER BY source",
        # the nearest real images of a model's worst samples (largest distance to the real manifold)
        "SELECT s.sample_id, s.path, s.rgb_nn_dist, r.path AS nearest_real FROM samples s JOIN manifests r "
        "ON s.rgb_nn_sample_id = r.sample_id WHERE s.source = 'alpha' ORDER BY rgb_nn_dist DESC LIMIT 5",
        # mean artifact norm per model and space
        "SELECT source, avg(rgb_nn_dist) AS rgb, avg(freq_nn_dist) AS freq, avg(sl_nn_dist) AS sl, "
        "avg(ssl_nn_dist) AS ssl FROM samples WHERE split <> 'reference' GROUP BY source ORDER BY source",
    ]
    with query.connect(query_store.home, ["bench"]) as db:
        accuracy, worst, norms = (db.query(sql).to_pylist() for sql in examples)
    assert [r["source"] for r in accuracy] == ["alpha", "beta", "real"]
    assert len(worst) == 5 and worst[0]["rgb_nn_dist"] >= worst[-1]["rgb_nn_dist"]
    assert all(r["nearest_real"].startswith("real/") for r in worst)
    alpha = query_store.store.model("alpha").artifacts("rgb")
    expected = float(np.linalg.norm(alpha.of_kind("nearest")[:].astype(np.float64), axis=1).mean())
    assert next(r["rgb"] for r in norms if r["source"] == "alpha") == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("statement, message", [
    ("SELEC 1", "invalid SQL|Parser"),
    ("SELECT * FROM nothing_here", "views: "),
    ("DROP VIEW samples", "only read statements"),
    ("COPY (SELECT 1) TO 'x.csv'", "only read statements"),
    ("SELECT 1; SELECT 2", "exactly one"),
])
def test_bad_sql_is_refused_with_duckdbs_message_and_the_views(query_store, statement, message):
    with query.connect(query_store.home, ["bench"]) as db, pytest.raises(InputError, match=message):
        db.query(statement)


def test_queries_write_nothing_in_the_store(query_store, tmp_path):
    def snapshot():  # the outputs; the observation's file hash cache (a disposable cache) may be refreshed
        return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in query_store.home.store_root.rglob("*")
                if FILE_HASHES_DIR not in p.parts}

    before = snapshot()
    with query.connect(query_store.home, ["bench"]) as db:
        db.query("SELECT * FROM samples")
    query.feature_rows(query_store.store, query_store.settings, "rgb", "alpha", 5)
    query.lazy_array(query_store.store, "alpha", "artifacts", "rgb").sum().compute()
    catalog(query_store.home, [query_store.settings])
    assert snapshot() == before


def test_lazy_arrays_read_the_stores(query_store):
    store = query_store.store
    images = query.lazy_array(store, "beta")
    np.testing.assert_array_equal(images.compute(), store.model("beta").images()[:])
    emb = query.lazy_array(store, "real", "embeddings", "ssl")
    assert emb.shape == store.real.embeddings("ssl").shape and emb.chunks[0][0] == query_store.settings.chunk_rows
    knn = query.lazy_array(store, "alpha", "artifacts", "freq", "knn_artifact")
    np.testing.assert_array_equal(knn[3:7].compute(), store.model("alpha").artifacts("freq").of_kind("knn")[3:7])
    with pytest.raises(InputError, match="per space"):
        query.lazy_array(store, "alpha", "embeddings")
    with pytest.raises(InputError, match="choose one of"):
        query.lazy_array(store, "alpha", "features")


def test_show_rows_filter_by_source_and_space(query_store):
    table = query.feature_rows(query_store.store, query_store.settings, space="rgb", source="beta", limit=7)
    assert table.num_rows == 7 and set(table.column("source").to_pylist()) == {"beta"}
    assert "rgb_nn_id" in table.column_names and not any(c.startswith(("freq_", "sl_", "ssl_"))
                                                          for c in table.column_names)
    with pytest.raises(InputError, match="spaces: \\['rgb'"):
        query.feature_rows(query_store.store, query_store.settings, space="pixels")
    with pytest.raises(InputError, match="sources: \\['alpha', 'beta', 'real'\\]"):
        query.feature_rows(query_store.store, query_store.settings, source="gamma")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_writes_every_row(query_store, tmp_path, suffix):
    table = query.feature_rows(query_store.store, query_store.settings, source="alpha")
    path = export_table(table, tmp_path / f"alpha{suffix}")
    if suffix == ".parquet":
        assert pq.read_table(path).equals(table)
    else:
        assert len(path.read_text().strip().splitlines()) == table.num_rows + 1
    with pytest.raises(InputError, match=".parquet or .csv"):
        export_table(table, tmp_path / "alpha.xlsx")


def test_the_catalog_says_fresh_then_what_a_settings_change_makes_stale(query_store, tmp_path):
    cat = catalog(query_store.home, [query_store.settings])
    (entry,) = cat["datasets"]
    assert entry["status"]["stale"] == 0 and entry["status"]["missing"] == 0 and entry["status"]["fresh"] > 20
    assert [s["source"] for s in entry["sources"]] == ["real", "alpha", "beta"]
    assert all(s["size_bytes"] > 0 for s in entry["sources"])
    assert entry["feature_table"]["n_samples"] == query.feature_table(query_store.store).num_rows
    assert "status against the current settings" in render_catalog(cat)
    changed = settings_from_dict({**_plain(query_store.settings), "artifacts": {"kinds": ["nearest", "knn"],
                                                                                 "knn_k": 3}})
    status = catalog(query_store.home, [changed])["datasets"][0]["status"]
    stale = {t["step"] for t in status["not_fresh"]}
    assert {"artifacts alpha in rgb", "artifacts real in ssl"} <= stale
    assert not any(s.startswith(("ingest", "embed", "index", "space")) for s in stale)
    empty = catalog(Home(tmp_path / "nothing"), [query_store.settings])["datasets"][0]
    assert not empty["exists"] and empty["status"]["fresh"] == 0 and empty["status"]["missing"] > 0


def _plain(settings):
    import dataclasses

    data = dataclasses.asdict(settings)
    data["zoo"] = []
    return data
