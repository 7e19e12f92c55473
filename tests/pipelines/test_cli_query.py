"""The query commands: manifpt attribute, ls, show and sql, as a user runs them."""

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from pipelines.cli import main

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "attribution.schema.json").read_text())


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def images(query_store, tmp_path_factory):
    """Two of alpha's stored test images and one image of the outsider model, as PNG files."""
    folder = tmp_path_factory.mktemp("cli_images")
    src = query_store.store.model("alpha")
    split = src.manifest(["split"]).column("split").to_pylist()
    rows = [r for r, s in enumerate(split) if s == "test"][:2]
    stored = src.images()[:]
    for r in rows:
        Image.fromarray(stored[r][0]).save(folder / f"alpha_{r}.png")
    shutil.copy(sorted(query_store.outsider.iterdir())[0], folder / "outsider.png")
    return folder


def test_attribute_prints_a_table_and_a_json_document(capsys, query_store, images):
    code, out, _ = run(capsys, "attribute", sorted(images.iterdir())[0],
                       *query_store.cli_args())
    assert code == 0 and "nearest real in rgb" in out and "rgb-knn" in out and "raw" in out
    code, out, _ = run(capsys, "attribute", images, "--json", *query_store.cli_args())
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    assert code == 0 and len(document["images"]) == 3
    assert {m["method"] for m in document["images"][0]["methods"]} == {
        "rgb", "rgb-knn", "freq", "freq-knn", "sl", "sl-knn", "ssl", "ssl-knn", "raw"}


def test_attribute_with_chosen_methods_and_saved_views(capsys, query_store, images, tmp_path):
    code, out, _ = run(capsys, "attribute", images / "outsider.png", "--method", "ssl", "--method", "raw", "--json",
                       "--save", tmp_path / "views", *query_store.cli_args())
    (image,) = json.loads(out)["images"]
    assert code == 0 and [m["method"] for m in image["methods"]] == ["ssl", "raw"]
    assert (tmp_path / "views" / "bench" / "0000_outsider_rgb_artifact.png").is_file()


def test_a_bad_image_is_reported_and_the_others_attributed(capsys, query_store, images, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(images, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = run(capsys, "attribute", folder, *query_store.cli_args())
    assert code == 1 and "broken.png: cannot read the image" in out and "1 of 4 images" in err
    assert out.count("nearest real in rgb") == 3


@pytest.mark.parametrize("argv, message", [
    (("--dataset", "nope"), "no dataset 'nope' in the settings; datasets: \\['bench'\\]"),
    (("--method", "pixels"), "method .pixels. is not attributed in dataset .bench.; valid methods: rgb, rgb-knn"),
    (("--method", "baseline:dzanic"), "valid methods: rgb"),
])
def test_attribute_refuses_unknown_names_listing_the_valid_ones(capsys, query_store, images, argv, message):
    import re

    code, _, err = run(capsys, "attribute", images, *argv, *query_store.cli_args())
    assert code == 2 and re.search(message, err), err


def test_attribute_on_an_empty_home_names_what_to_materialize(capsys, query_store, images, tmp_path):
    code, _, err = run(capsys, "attribute", images, "--home", tmp_path, "--profile", "tiny", "--config",
                       query_store.config)
    assert code == 2 and "materialize" in err and "ingestion" in err


def test_ls_lists_the_store_and_its_status(capsys, query_store):
    code, out, _ = run(capsys, "ls", *query_store.cli_args())
    assert code == 0 and "dataset bench" in out and "0 stale, 0 missing" in out and "test accuracy" in out
    code, out, _ = run(capsys, "ls", "--json", *query_store.cli_args())
    (entry,) = json.loads(out)["datasets"]
    assert code == 0 and entry["status"]["fresh"] > 0 and {s["space"] for s in entry["spaces"]} == {
        "rgb", "freq", "sl", "ssl"}


def test_show_prints_and_exports_rows(capsys, query_store, tmp_path):
    code, out, _ = run(capsys, "show", "bench", "--source", "alpha", "--space", "rgb", "--limit", "3",
                       *query_store.cli_args())
    assert code == 0 and "(3 rows)" in out and "rgb_nn_dist" in out and "ssl_nn_dist" not in out
    code, out, _ = run(capsys, "show", "bench", "--source", "beta", "--export", tmp_path / "beta.csv",
                       *query_store.cli_args())
    n_beta = query_store.store.model("beta").summary.n_samples
    assert code == 0 and len((tmp_path / "beta.csv").read_text().strip().splitlines()) == n_beta + 1


def test_sql_runs_a_query_lists_views_and_refuses_writes(capsys, query_store, tmp_path):
    code, out, _ = run(capsys, "sql", "SELECT method, count(*) AS n FROM predictions GROUP BY method ORDER BY method",
                       *query_store.cli_args())
    assert code == 0 and "freq-knn" in out and "(9 rows)" in out
    code, out, _ = run(capsys, "sql", "--views", *query_store.cli_args())
    assert code == 0 and "bench.samples" in out
    code, _, err = run(capsys, "sql", "DELETE FROM samples", *query_store.cli_args())
    assert code == 2 and "only read statements" in err
    code, out, _ = run(capsys, "sql", "SELECT * FROM samples", "--export", tmp_path / "all.parquet",
                       *query_store.cli_args())
    assert code == 0 and (tmp_path / "all.parquet").is_file()
