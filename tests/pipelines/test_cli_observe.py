"""manifpt observe: every source's content hash, reading only the files that changed unless --deep."""

import os

import numpy as np
import pytest

from manifpt_core.sources import folder_content_hash
from pipelines.cli import main


@pytest.fixture
def bench(tmp_path, config_writer, file_ager):
    """The command's arguments over the small folder benchmark (files an hour old), and the benchmark's root."""
    config = config_writer(tmp_path)
    file_ager(tmp_path / "bench")
    return ["--home", str(tmp_path / "home"), "--profile", "tiny", "--config", str(config)], tmp_path / "bench"


def observe(capsys, *argv) -> tuple[int, dict[str, tuple[str, str, str]], str]:
    """Exit code, ``{source: (files, read, content hash)}`` from the table, and stderr."""
    code = main(["observe", *argv])
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].split() == ["source", "files", "read", "content", "hash"] and lines[-1].startswith("manifpt:")
    return code, {source: tuple(rest) for source, *rest in (line.split() for line in lines[1:-1])}, out.err


def test_observe_reads_only_what_changed_and_deep_reads_everything(capsys, bench):
    args, root = bench
    code, first, _ = observe(capsys, *args)
    expected = {f"bench/{name}": folder_content_hash(root / name) for name in ("real", "alpha", "beta")}
    assert code == 0 and {s: row[2] for s, row in first.items()} == expected
    assert {s: row[:2] for s, row in first.items()} == {"bench/real": ("180", "180"), "bench/alpha": ("60", "60"),
                                                        "bench/beta": ("60", "60")}
    _, second, _ = observe(capsys, *args)
    assert {s: row[1] for s, row in second.items()} == {s: "0" for s in expected}
    image = root / "beta" / "0003.png"
    image.write_bytes(image.read_bytes() + b"appended")
    os.utime(image, (1e9, 1e9))
    _, third, _ = observe(capsys, *args)
    assert third["bench/beta"][1] == "1" and third["bench/beta"][2] != expected["bench/beta"]
    assert third["bench/real"] == second["bench/real"]
    _, deep, _ = observe(capsys, *args, "--deep", "--dataset", "bench")
    assert {s: row[1] for s, row in deep.items()} == {"bench/real": "180", "bench/alpha": "60", "bench/beta": "60"}
    assert {s: row[2] for s, row in deep.items()} == {s: row[2] for s, row in third.items()}


def test_observe_lists_the_query_sets_and_reports_an_empty_one(capsys, bench, png_writer, tmp_path):
    args, _ = bench
    png_writer(tmp_path / "home" / "queries" / "mine", np.zeros((3, 1, 12, 12), np.uint8))
    (tmp_path / "home" / "queries" / "empty").mkdir()
    code, rows, err = observe(capsys, *args)
    assert code == 1 and rows["queries/mine"][:2] == ("3", "3") and "queries/empty" in err and "no image" in err
    _, rows, _ = observe(capsys, *args, "--dataset", "bench")
    assert not any(source.startswith("queries/") for source in rows)
