"""Tests of manifpt_core.sources: idx files, Fashion-MNIST, image folders, benchmark layouts."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from manifpt_core.errors import InputError
from manifpt_core.sources import (
    DEFAULT_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    Resize,
    discover_benchmark,
    fashion_mnist_dir,
    folder_content_hash,
    list_image_files,
    load_fashion_mnist,
    load_image_folder,
    read_idx,
)

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
          np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write ``array`` as an idx file, independently of the reader under test."""
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    header = bytes([0, 0, _CODES[big.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + big.tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


# ---------------------------------------------------------------- idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_roundtrip(tmp_path, gz, dtype):
    rng = np.random.default_rng(0)
    array = (rng.integers(-100, 100, size=(3, 4, 5)) % (256 if dtype == np.uint8 else 1000)).astype(dtype)
    path = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array, gz=gz)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype)
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, array)
    got[0, 0, 0] = 1  # writable


def test_read_idx_truncated(tmp_path):
    path = write_idx(tmp_path / "trunc-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InputError, match="trunc-idx3-ubyte"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "trunc.gz", np.arange(1000, dtype=np.uint8).reshape(10, 100), gz=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match="trunc.gz"):
        read_idx(path)


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(InputError, match="bad-magic.*not an idx file"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01" + (3).to_bytes(4, "big") + b"abc")  # unknown dtype code
    with pytest.raises(InputError, match="bad-magic"):
        read_idx(path)


def test_read_idx_missing(tmp_path):
    with pytest.raises(InputError, match="nope"):
        read_idx(tmp_path / "nope")


# ---------------------------------------------------------------- Fashion-MNIST


def make_fake_fashion(directory: Path, n_train: int = 5, n_test: int = 3, gz: bool = True) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    data = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)
        data[split] = (images, labels)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_load_fashion_mnist_fake(tmp_path, gz):
    data = make_fake_fashion(tmp_path / "fm", gz=gz)
    for split, n in (("train", 5), ("test", 3)):
        images, labels = load_fashion_mnist(tmp_path / "fm", split)
        assert images.shape == (n, 1, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        np.testing.assert_array_equal(images[:, 0], data[split][0])
        np.testing.assert_array_equal(labels, data[split][1])
    assert len(FASHION_MNIST_CLASSES) == 10 and FASHION_MNIST_CLASSES[9] == "Ankle boot"


def test_fashion_mnist_env_override(tmp_path, monkeypatch):
    make_fake_fashion(tmp_path / "fm")
    monkeypatch.setenv("MANIFPT_FASHION_MNIST", str(tmp_path / "fm"))
    assert fashion_mnist_dir() == tmp_path / "fm"
    assert fashion_mnist_dir(tmp_path / "fm") == tmp_path / "fm"
    assert load_fashion_mnist(split="test")[0].shape == (3, 1, 28, 28)


def test_fashion_mnist_missing_dir(tmp_path):
    with pytest.raises(InputError, match="dataset-fashion-mnist") as info:
        fashion_mnist_dir(tmp_path / "absent")
    assert "MANIFPT_FASHION_MNIST" in str(info.value) and "absent" in str(info.value)


def test_fashion_mnist_missing_file(tmp_path):
    make_fake_fashion(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte") as info:
        load_fashion_mnist(tmp_path / "fm", "train")
    message = str(info.value)
    assert "dataset-fashion-mnist" in message and "MANIFPT_FASHION_MNIST" in message and str(tmp_path / "fm") in message


def test_fashion_mnist_bad_split_and_count_mismatch(tmp_path):
    make_fake_fashion(tmp_path / "fm")
    with pytest.raises(InputError, match="'test'.*'train'"):
        load_fashion_mnist(tmp_path / "fm", "valid")
    write_idx(tmp_path / "fm" / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), gz=True)
    with pytest.raises(InputError, match="train-images-idx3-ubyte.*train-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path / "fm", "train")


@pytest.mark.skipif(not Path(DEFAULT_FASHION_MNIST_DIR).is_dir(),
                    reason=f"Debian package dataset-fashion-mnist not installed ({DEFAULT_FASHION_MNIST_DIR})")
def test_real_fashion_mnist():
    train_x, train_y = load_fashion_mnist(DEFAULT_FASHION_MNIST_DIR, "train")
    test_x, test_y = load_fashion_mnist(DEFAULT_FASHION_MNIST_DIR, "test")
    assert train_x.shape == (60000, 1, 28, 28) and train_y.shape == (60000,)
    assert test_x.shape == (10000, 1, 28, 28) and test_y.shape == (10000,)
    assert set(np.unique(train_y)) == set(range(10))


# ---------------------------------------------------------------- image folders


def save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp", ".PNG"])
@pytest.mark.parametrize("channels", [1, 3])
def test_folder_roundtrip(tmp_path, suffix, channels):
    rng = np.random.default_rng(2)
    shape = (6, 8) if channels == 1 else (6, 8, 3)
    arrays = {f"sub/b{suffix}": rng.integers(0, 256, shape, dtype=np.uint8),
              f"a{suffix}": rng.integers(0, 256, shape, dtype=np.uint8)}
    for rel, array in arrays.items():
        save(tmp_path / rel, array, **({"lossless": True} if suffix == ".webp" else {}))
    (tmp_path / "notes.txt").write_text("not an image")
    images, paths = load_image_folder(tmp_path)
    assert paths == [f"a{suffix}", f"sub/b{suffix}"]
    if suffix == ".webp" and channels == 1:
        # WebP has no grayscale mode: PIL stores L as RGB, so it reads back as 3 equal channels.
        assert images.shape == (2, 3, 6, 8)
        assert (images == images[:, :1]).all()
        images = images[:, :1]
    assert images.shape == (2, channels, 6, 8) and images.dtype == np.uint8
    for got, rel in zip(images, paths):
        expected = arrays[rel] if channels == 1 else arrays[rel].transpose(2, 0, 1)
        if suffix.lower() in (".png", ".webp"):  # lossless
            np.testing.assert_array_equal(got.reshape(expected.shape), expected)
        else:  # JPEG is lossy: only check the round trip is close on average
            assert np.abs(got.reshape(expected.shape).astype(int) - expected).mean() < 60


def test_folder_one_bit_becomes_l(tmp_path):
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1").save(tmp_path / "bw.png")
    images, _ = load_image_folder(tmp_path)
    np.testing.assert_array_equal(images[0, 0], [[0, 255], [255, 0]])


def test_folder_corrupt(tmp_path):
    save(tmp_path / "ok.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "x.png").write_bytes(b"garbage bytes, not a png")
    with pytest.raises(InputError, match=r"x\.png") as info:
        load_image_folder(tmp_path)
    assert info.value.__cause__ is not None


def test_folder_empty_and_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"empty.*\.png.*\.webp"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(InputError, match="missing"):
        list_image_files(tmp_path / "missing")


def test_folder_mixed_sizes_and_resize(tmp_path):
    save(tmp_path / "a.png", np.zeros((4, 5, 3), np.uint8))
    save(tmp_path / "b.png", np.full((7, 9, 3), 200, np.uint8))
    with pytest.raises(InputError, match=r"a\.png is 4x5.*b\.png is 7x9.*Resize") as info:
        load_image_folder(tmp_path)
    assert "Resize((32, 32)" in str(info.value)
    resize = Resize((8, 6), "bilinear")
    images, paths = load_image_folder(tmp_path, resize=resize, progress=True)
    assert images.shape == (2, 3, 8, 6)
    assert (images[0] == 0).all() and (images[1] == 200).all()
    assert resize.to_dict() == {"size": [8, 6], "filter": "bilinear"}
    assert Resize.from_dict(resize.to_dict()) == resize


def test_resize_validation():
    with pytest.raises(InputError, match="'bogus'.*bicubic"):
        Resize((8, 8), "bogus")
    with pytest.raises(InputError, match="positive"):
        Resize((0, 8))
    assert Resize([8, 8]).size == (8, 8)


def test_folder_mixed_modes(tmp_path):
    save(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    save(tmp_path / "b.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match=r"mixes modes.*a\.png.*'L'.*b\.png.*'RGB'"):
        load_image_folder(tmp_path)


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA"])
def test_folder_unsupported_mode(tmp_path, mode):
    Image.new(mode, (4, 4)).save(tmp_path / "img.png")
    with pytest.raises(InputError, match=rf"img\.png.*'{mode}'.*convert"):
        load_image_folder(tmp_path)


def test_hidden_files_skipped(tmp_path):
    save(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "._a.png").write_bytes(b"AppleDouble junk")
    save(tmp_path / ".cache" / "c.png", np.zeros((9, 9), np.uint8))
    assert [p.name for p in list_image_files(tmp_path)] == ["a.png"]


# ---------------------------------------------------------------- benchmark layout


def test_discover_benchmark(tmp_path):
    for name in ("stylegan2", "real", "ddpm-cifar_10", ".hidden"):
        (tmp_path / name).mkdir()
    (tmp_path / "README.md").write_text("x")
    found = discover_benchmark(tmp_path)
    assert list(found) == ["real", "ddpm-cifar_10", "stylegan2"]
    assert found["stylegan2"] == tmp_path / "stylegan2"


def test_discover_benchmark_errors(tmp_path):
    with pytest.raises(InputError, match="absent"):
        discover_benchmark(tmp_path / "absent")
    (tmp_path / "gan").mkdir()
    with pytest.raises(InputError, match=r"no 'real' folder.*real"):
        discover_benchmark(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "Style GAN").mkdir()
    assert list(discover_benchmark(tmp_path)) == ["real", "gan"]  # a badly named folder is skipped, not an error


def test_folder_content_hash(tmp_path):
    save(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    first = folder_content_hash(tmp_path)
    assert first == folder_content_hash(tmp_path) and len(first) == 64
    save(tmp_path / "sub" / "b.png", np.zeros((4, 4), np.uint8))
    second = folder_content_hash(tmp_path)
    assert second != first
    stat = (tmp_path / "a.png").stat()
    os.utime(tmp_path / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert folder_content_hash(tmp_path) == second  # a touch is not a change of content
    save(tmp_path / "a.png", np.full((4, 4), 7, np.uint8))
    assert folder_content_hash(tmp_path) != second


def test_class_subfolders_give_labels_and_flat_folders_none():
    from manifpt_core.sources import folder_labels

    labels, names = folder_labels(["shoe/1.png", "bag/2.png", "shoe/deep/3.png"])
    assert names == ["bag", "shoe"] and labels.tolist() == [1, 0, 1]
    labels, names = folder_labels(["shoe/1.png", "2.png"])
    assert names == [] and labels.tolist() == [-1, -1]


def test_a_model_folder_name_with_a_trailing_newline_is_refused(tmp_path):
    from manifpt_core.sources import scan_benchmark

    (tmp_path / "real").mkdir()
    (tmp_path / "gan\n").mkdir()
    found = scan_benchmark(tmp_path)
    assert list(found.models) == ["real"] and "does not match" in found.skipped[0].reason
