"""Tests of discover_models: the model folders of ``models_path``, a folder of model folders beside any source."""

from __future__ import annotations

import re

import numpy as np
import pytest

from manifpt_core.errors import InputError
from manifpt_core.sources import discover_benchmark, discover_models, load_image_folder, scan_benchmark, scan_models


def test_discover_models_lists_model_folders_by_name(tmp_path, png_writer):
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    for name in ("mygan", "ddpm-v2", "a_vae"):
        png_writer(tmp_path / name, images)
    (tmp_path / ".cache").mkdir()  # hidden: tool debris
    (tmp_path / ".cache" / "x.png").write_bytes(b"not read")
    (tmp_path / "notes.txt").write_text("a plain file")
    found = discover_models(tmp_path)
    assert list(found) == ["a_vae", "ddpm-v2", "mygan"]
    assert found["mygan"] == tmp_path / "mygan"
    loaded, paths = load_image_folder(found["mygan"])
    np.testing.assert_array_equal(loaded, images)
    assert paths == ["0000.png", "0001.png"]


def test_an_empty_models_folder_has_no_model(tmp_path):
    assert discover_models(tmp_path) == {}


def test_a_bad_folder_name_is_skipped_with_a_suggestion(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "My GAN").mkdir()
    found = scan_models(tmp_path)
    assert list(found.models) == ["good"] == list(discover_models(tmp_path))
    (skipped,) = found.skipped
    assert skipped.path == tmp_path / "My GAN"
    assert re.search(r"\[a-z0-9\].*'my_gan'", skipped.reason)


def test_a_folder_named_real_is_skipped(tmp_path):
    (tmp_path / "mygan").mkdir()
    (tmp_path / "real").mkdir()
    found = scan_models(tmp_path)
    assert list(found.models) == ["mygan"]
    (skipped,) = found.skipped
    assert re.search(r"'real' is reserved for the real images.*models_path.*rename", skipped.reason)


def test_a_missing_root_names_the_setting_and_the_fix(tmp_path):
    with pytest.raises(InputError, match=r"models_path .*absent does not exist\. Fix: create it"):
        discover_models(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"models_path .*file is not a directory\. Fix: point the setting models_path"):
        discover_models(tmp_path / "file")


def test_a_relative_root_is_read_from_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "models" / "mygan").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    found = discover_models("models")
    assert list(found) == ["mygan"] and found["mygan"].resolve() == (tmp_path / "models" / "mygan").resolve()
    with pytest.raises(InputError, match=rf"models_path absent \(relative to the current directory {tmp_path}\)"):
        discover_models("absent")


def test_benchmark_discovery_shares_the_name_rule(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "Style GAN").mkdir()
    assert list(discover_benchmark(tmp_path)) == ["real"]
    (skipped,) = scan_benchmark(tmp_path).skipped
    assert skipped.path.name == "Style GAN" and "'style_gan'" in skipped.reason
