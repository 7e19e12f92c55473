"""The scan that lists a folder's images gives what pathlib's rglob gave (the definition it replaced for speed)."""

import os
from pathlib import Path

import pytest

from manifpt_core.errors import InputError
from manifpt_core.sources import IMAGE_SUFFIXES, list_image_files
from manifpt_core.sources.folder import image_names


def rglob_names(folder: Path) -> list[str]:
    """The former listing: every path under ``folder`` by rglob, hidden parts skipped, image suffixes, files."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if not any(part.startswith(".") for part in rel.parts) and path.suffix.lower() in IMAGE_SUFFIXES \
                and path.is_file():
            found.append(rel.as_posix())
    return sorted(found)


def test_the_scan_lists_what_rglob_listed(tmp_path):
    root, outside = tmp_path / "images", tmp_path / "outside"
    for rel in ("a.png", "B.JPG", "c.jpeg", "d.WebP", "notes.txt", "png", "x.png.bak", ".hidden.png", "._a.png",
                "sub/e.png", "sub/deeper/f.jpg", "sub/.cache/g.png", ".git/h.png", "z/0.png", "z-1/0.png",
                "z.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (outside / "linked").mkdir(parents=True)
    (outside / "linked" / "i.png").write_bytes(b"x")
    (outside / "j.png").write_bytes(b"x")
    os.symlink(outside / "linked", root / "linked_dir")  # not followed, as rglob did not
    os.symlink(outside / "j.png", root / "linked.png")  # a link to a file counts
    os.symlink(tmp_path / "absent.png", root / "broken.png")  # a broken link does not
    (root / "folder.png").mkdir()  # a folder with an image suffix is not a file
    expected = rglob_names(root)
    assert "linked.png" in expected and "sub/deeper/f.jpg" in expected and "broken.png" not in expected
    # Judged against a root holding both folders, the links stay inside it (links leaving it: test_folder_robustness).
    assert image_names(root, root=tmp_path) == expected
    assert list_image_files(root, root=tmp_path) == [root / name for name in expected]


def test_a_folder_without_images_is_an_error(tmp_path):
    (tmp_path / ".hidden.png").write_bytes(b"x")
    with pytest.raises(InputError, match="holds no image file"):
        image_names(tmp_path)
