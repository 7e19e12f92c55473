"""Robust folders: a badly named or escaping model folder is skipped and reported, a link leaving the folder is
never walked unless follow_symlinks, and with on_bad_image = "skip" an unreadable file is recorded, not fatal."""

import os
import re

import numpy as np
import pytest

from manifpt_core.errors import InputError
from manifpt_core.sources import (
    list_image_files,
    observe_folder,
    read_image_folder,
    scan_benchmark,
    scan_models,
)
from manifpt_core.sources.folder import image_names


@pytest.fixture
def scanned(monkeypatch):
    """The folders ``os.scandir`` opens from now on (a link to ``/`` must never be one of them)."""
    opened = []
    real_scandir = os.scandir

    def tracking(path="."):
        opened.append(os.path.realpath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", tracking)
    return opened


def test_bad_names_and_escaping_links_are_skipped_and_the_other_models_found(tmp_path, png_writer):
    images = np.zeros((2, 1, 4, 4), np.uint8)
    models, outside = tmp_path / "models", tmp_path / "outside"
    for name in ("alpha", "beta"):
        png_writer(models / name, images)
    png_writer(outside / "gan", images)
    (models / "My GAN").mkdir()
    os.symlink("/", models / "rootlink")
    os.symlink(outside / "gan", models / "elsewhere")
    os.symlink(models / "alpha", models / "alias")  # stays inside models_path: a model like any other
    found = scan_models(models)
    assert list(found.models) == ["alias", "alpha", "beta"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert sorted(reasons) == ["My GAN", "elsewhere", "rootlink"]
    assert "'my_gan'" in reasons["My GAN"]
    for name in ("rootlink", "elsewhere"):
        assert str(models / name) in reasons[name] and "follow_symlinks = true" in reasons[name]
    followed = scan_models(models, follow_symlinks=True)
    assert list(followed.models) == ["alias", "alpha", "beta", "elsewhere", "rootlink"]
    assert [s.path.name for s in followed.skipped] == ["My GAN"]


def test_a_benchmark_skips_escaping_model_folders_but_not_its_real_images(tmp_path, png_writer):
    images = np.zeros((2, 1, 4, 4), np.uint8)
    png_writer(tmp_path / "bench" / "real", images)
    png_writer(tmp_path / "bench" / "alpha", images)
    os.symlink("/", tmp_path / "bench" / "rootlink")
    found = scan_benchmark(tmp_path / "bench")
    assert list(found.models) == ["real", "alpha"] and [s.path.name for s in found.skipped] == ["rootlink"]
    png_writer(tmp_path / "elsewhere", images)
    other = tmp_path / "other"
    other.mkdir()
    os.symlink(tmp_path / "elsewhere", other / "real")
    with pytest.raises(InputError, match=r"real leads to .*elsewhere.*follow_symlinks = true"):
        scan_benchmark(other)


def test_a_link_to_the_root_of_the_filesystem_is_never_walked(tmp_path, png_writer, scanned, caplog):
    folder = tmp_path / "images"
    png_writer(folder, np.zeros((2, 1, 4, 4), np.uint8))
    (folder / "sub").mkdir()
    os.symlink("/", folder / "sub" / "everything")
    os.symlink("/", folder / "slash.png")
    assert image_names(folder) == ["0000.png", "0001.png"]
    assert list_image_files(folder) == [folder / "0000.png", folder / "0001.png"]
    assert observe_folder(folder).n_files == 2
    loaded = read_image_folder(folder)
    assert loaded.paths == ["0000.png", "0001.png"]
    assert sorted(s.path for s in loaded.skipped) == ["slash.png", "sub/everything"]
    assert all("follow_symlinks = true" in s.reason for s in loaded.skipped)
    assert "/" not in scanned and set(scanned) <= {str(folder.resolve()), str((folder / "sub").resolve())}
    assert re.search(r"symbolic link .*everything leads to /, outside .*images.*follow_symlinks = true", caplog.text)


def test_links_inside_the_root_are_fine_and_links_leaving_it_follow_the_setting(tmp_path, png_writer):
    root = tmp_path / "bench"
    png_writer(root / "alpha", np.zeros((2, 1, 4, 4), np.uint8))
    png_writer(root / "shared", np.full((1, 1, 4, 4), 9, np.uint8))
    png_writer(tmp_path / "outside" / "more", np.full((1, 1, 4, 4), 5, np.uint8))
    os.symlink(root / "shared" / "0000.png", root / "alpha" / "inside.png")
    os.symlink(tmp_path / "outside" / "more", root / "alpha" / "more")
    os.symlink(tmp_path / "outside", tmp_path / "outside" / "more" / "loop")  # a cycle once followed
    assert image_names(root / "alpha", root=root) == ["0000.png", "0001.png", "inside.png"]
    assert image_names(root / "alpha") == ["0000.png", "0001.png"]  # judged against alpha/ itself, it leaves
    followed = image_names(root / "alpha", follow_symlinks=True, root=root)
    assert followed == ["0000.png", "0001.png", "inside.png", "more/0000.png"]  # each real folder once: no loop
    assert observe_folder(root / "alpha", root=root).content_hash != observe_folder(
        root / "alpha", follow_symlinks=True, root=root).content_hash


def test_skip_records_each_unreadable_file_and_error_names_it(tmp_path, png_writer):
    folder = tmp_path / "gan"
    good = np.arange(3 * 16, dtype=np.uint8).reshape(3, 1, 4, 4)
    png_writer(folder, good)
    (folder / "0000.png").replace(folder / "a.png")
    truncated = (folder / "0001.png").read_bytes()
    (folder / "b_truncated.png").write_bytes(truncated[: len(truncated) // 2])
    (folder / "c_text.png").write_text("not an image at all")
    with pytest.raises(InputError, match=r"b_truncated\.png: cannot read image.*on_bad_image = \"skip\""):
        read_image_folder(folder)
    loaded = read_image_folder(folder, on_bad_image="skip")
    assert loaded.paths == ["0001.png", "0002.png", "a.png"]
    np.testing.assert_array_equal(loaded.images, good[[1, 2, 0]])
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert sorted(reasons) == ["b_truncated.png", "c_text.png"]
    assert all("cannot read image" in r for r in reasons.values())
    with pytest.raises(InputError, match="on_bad_image = 'sometimes' is not one of"):
        read_image_folder(folder, on_bad_image="sometimes")


def test_skip_with_no_readable_file_left_is_an_error(tmp_path):
    (tmp_path / "x.png").write_text("text")
    with pytest.raises(InputError, match=r"none of its 1 image files can be read.*x\.png"):
        read_image_folder(tmp_path, on_bad_image="skip")
