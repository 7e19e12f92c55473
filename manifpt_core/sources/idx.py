"""Reading idx files (the MNIST format) and the Fashion-MNIST data set.

The Fashion-MNIST files come from the Debian package ``dataset-fashion-mnist``
(installed under :data:`DEFAULT_FASHION_MNIST_DIR`) or from any directory named
by the ``MANIFPT_FASHION_MNIST`` environment variable or the config key
``source.path``.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import zlib
from pathlib import Path

import numpy as np

from manifpt_core.errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "MANIFPT_FASHION_MNIST"

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

FASHION_MNIST_SPLITS: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# idx dtype codes; multi-byte types are big-endian on disk.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"

_FASHION_FIX = (
    "Fix: install the Debian package dataset-fashion-mnist "
    "(apt-get install dataset-fashion-mnist), or put the four idx files "
    "(plain or .gz) in a directory and set MANIFPT_FASHION_MNIST to it "
    "(or the config key source.path)."
)


def _read_bytes(path: Path) -> bytes:
    """Return the file's bytes, gunzipped when it is a gzip file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise InputError(f"{path}: idx file not found. Fix: check the path.") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read idx file ({err}). Fix: check the path and its permissions.") from err
    # Sniff the gzip magic rather than trust the suffix: Debian ships .gz, users often gunzip.
    if raw[:2] != _GZIP_MAGIC:
        if path.suffix == ".gz":
            raise InputError(
                f"{path}: named .gz but is not a gzip file. "
                "Fix: re-download the file, or rename it without .gz if it is a plain idx file."
            )
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(
            f"{path}: truncated or corrupt gzip file ({err}). Fix: re-download or reinstall the file."
        ) from err


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx file (plain or gzip-compressed) into a numpy array.

    The header is two zero bytes, a dtype code (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then one
    big-endian uint32 per dimension. The data must hold exactly the product of
    the dimensions. Multi-byte values are returned in native byte order.

    Raises:
        InputError: the file is missing, not gzip despite a .gz name, a
            truncated or corrupt gzip, has a wrong magic, or its data length
            does not match its dimensions. The message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise InputError(
            f"{path}: not an idx file (magic {data[:4].hex() or 'empty'}; expected 0000 followed by a "
            f"dtype code in {sorted(hex(c) for c in _IDX_DTYPES)} and the number of dimensions). "
            "Fix: point to an idx file such as train-images-idx3-ubyte(.gz)."
        )
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_len:
        raise InputError(
            f"{path}: idx header is truncated or declares {ndim} dimensions. "
            "Fix: re-download or reinstall the file."
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header_len
    if actual != expected:
        raise InputError(
            f"{path}: idx data holds {actual} bytes but the header dims {dims} of {dtype.name} "
            f"need {expected} (truncated or corrupt). Fix: re-download or reinstall the file."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    # astype copies: the result is writable and in native byte order.
    return array.astype(dtype.newbyteorder("="))


def fashion_mnist_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Resolve and check the Fashion-MNIST directory.

    The directory is ``directory`` when given, else ``$MANIFPT_FASHION_MNIST``,
    else :data:`DEFAULT_FASHION_MNIST_DIR`. Each of the four idx files must be
    there, plain or ``.gz``.

    Raises:
        InputError: the directory or one of the files is missing; the message
            names them and says how to install the data.
    """
    if directory is not None:
        resolved, origin = Path(directory), "argument"
    elif os.environ.get(FASHION_MNIST_ENV):
        resolved, origin = Path(os.environ[FASHION_MNIST_ENV]), f"${FASHION_MNIST_ENV}"
    else:
        resolved, origin = Path(DEFAULT_FASHION_MNIST_DIR), "default"
    if not resolved.is_dir():
        raise InputError(f"Fashion-MNIST directory {resolved} (from {origin}) does not exist. {_FASHION_FIX}")
    for images_name, labels_name in FASHION_MNIST_SPLITS.values():
        for name in (images_name, labels_name):
            _find_idx_file(resolved, name)
    logger.debug("Fashion-MNIST directory %s (from %s)", resolved, origin)
    return resolved


def _find_idx_file(directory: Path, name: str) -> Path:
    """Return ``directory/name`` or ``directory/name.gz``, preferring the plain file."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise InputError(f"Fashion-MNIST directory {directory} lacks {name} (or {name}.gz). {_FASHION_FIX}")


def load_fashion_mnist(
    directory: str | os.PathLike[str] | None = None, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Load one Fashion-MNIST split.

    Args:
        directory: the directory holding the idx files; ``None`` resolves it
            as :func:`fashion_mnist_dir` does.
        split: ``"train"`` (60000 images) or ``"test"`` (10000 images).

    Returns:
        ``(images, labels)``: uint8 ``(N, 1, 28, 28)`` and int64 ``(N,)`` with
        values indexing :data:`FASHION_MNIST_CLASSES`.

    Raises:
        InputError: unknown split, missing or corrupt files, unexpected shapes,
            or image and label counts that disagree.
    """
    if split not in FASHION_MNIST_SPLITS:
        raise InputError(
            f"Unknown Fashion-MNIST split {split!r}. Fix: use one of {sorted(FASHION_MNIST_SPLITS)}."
        )
    root = fashion_mnist_dir(directory)
    images_name, labels_name = FASHION_MNIST_SPLITS[split]
    images_path = _find_idx_file(root, images_name)
    labels_path = _find_idx_file(root, labels_name)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise InputError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}. "
            "Fix: reinstall the Fashion-MNIST files."
        )
    if labels.ndim != 1:
        raise InputError(
            f"{labels_path}: expected labels of shape (N,), got {labels.shape}. Fix: reinstall the Fashion-MNIST files."
        )
    if len(images) != len(labels):
        raise InputError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels. "
            "Fix: the two files come from different releases or one is corrupt; reinstall both."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
        raise InputError(
            f"{labels_path}: labels range over [{labels.min()}, {labels.max()}], outside "
            f"[0, {len(FASHION_MNIST_CLASSES) - 1}]. Fix: reinstall the Fashion-MNIST files."
        )
    logger.info("Loaded Fashion-MNIST %s split: %d images from %s", split, len(images), root)
    return images[:, None, :, :], labels.astype(np.int64)
