"""Reading the images a user asks about, checked against a dataset's format before anything is computed.

A query image must have the dataset's channels and size (``(C, H, W)`` of its
stored images). A different size is an error unless the caller asks for an
explicit resize (:class:`~manifpt_core.sources.Resize`), which the output then
records; a different mode is always an error (converting changes the pixels a
fingerprint is read from). Empty, truncated or unreadable files, and files that
declare far more pixels than the dataset's images (a decompression bomb), are
refused before their pixels are decoded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from manifpt_core.errors import InputError
from manifpt_core.sources.folder import IMAGE_SUFFIXES, PIL_ERRORS, RESIZE_FILTERS, Resize, list_image_files

# A query image may declare at most this many times the dataset's pixels (before an explicit resize).
MAX_PIXEL_FACTOR = 256
MIN_PIXEL_LIMIT = 4096 * 4096
_MODES = {1: "L", 3: "RGB"}
_MODE_NAMES = {"L": "grayscale (L, 1 channel)", "RGB": "RGB (3 channels)"}


@dataclass(frozen=True)
class QueryImage:
    """One image to attribute: its path, its pixels (uint8 ``(C, H, W)``) or why it could not be read."""

    path: str
    pixels: np.ndarray | None
    error: str | None = None
    resize: Resize | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def collect_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files named directly, and every image file in the folders named (recursively, sorted).

    A path that does not exist, a folder with no image file, or no path at all is an InputError.
    """
    if not paths:
        raise InputError("no image given: name image files or folders of images")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += list_image_files(path)
        elif path.exists():
            found.append(path)
        else:
            raise InputError(f"{path} does not exist. Fix: name an image file ({', '.join(IMAGE_SUFFIXES)}) or a "
                             "folder of them")
    return found


def read_query_image(path: str | os.PathLike[str], shape: tuple[int, int, int], dataset: str,
                     resize_filter: str | None = None) -> np.ndarray:
    """The uint8 ``(C, H, W)`` pixels of one image in a dataset's format ``shape``; InputError otherwise.

    ``resize_filter`` (``nearest``, ``bilinear``, ``bicubic``, ``lanczos``, ``box``) resizes an image of
    another size to the dataset's; without it a size mismatch is an error that names the fix.
    """
    path = Path(path)
    channels, height, width = shape
    expected = f"dataset {dataset!r} holds {_MODE_NAMES[_MODES[channels]]} images of {height}x{width} (HxW)"
    if not path.is_file():
        raise InputError(f"{path}: not a file. Fix: name an image file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes). Fix: copy the image again")
    limit = max(MIN_PIXEL_LIMIT, MAX_PIXEL_FACTOR * height * width)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > limit:
                    raise InputError(f"{path}: declares {w}x{h} pixels, more than the {limit} allowed for a query "
                                     f"(a decompression bomb, or not an image of this dataset); {expected}")
                img.load()
                if img.mode == "1":
                    img = img.convert("L")
                if img.mode != _MODES[channels]:
                    fix = "convert('L')" if channels == 1 else "convert('RGB')"
                    raise InputError(f"{path}: the image is in mode {img.mode!r} but {expected}. Fix: convert it, "
                                     f"e.g. Image.open(p).{fix}.save(p); no conversion is applied implicitly")
                if (h, w) != (height, width):
                    if resize_filter is None:
                        raise InputError(f"{path}: the image is {h}x{w} (HxW) but {expected}. Fix: resize it, or "
                                         "ask for an explicit resize (--resize bicubic on the command line, "
                                         "resize='bicubic' in Python), which the output records")
                    img = img.resize((width, height), RESIZE_FILTERS[resize_filter])
                pixels = np.array(img, dtype=np.uint8)  # a writable copy
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InputError(f"{path}: refused as a decompression bomb ({err})") from err
    except PIL_ERRORS as err:
        raise InputError(f"{path}: cannot read the image ({type(err).__name__}: {err}); it is truncated, corrupt "
                         "or not an image. Fix: replace the file") from err
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def read_query_images(paths: Iterable[str | os.PathLike[str]], shape: tuple[int, int, int], dataset: str,
                      resize_filter: str | None = None) -> list[QueryImage]:
    """Every image read and checked; one that fails carries its error and the others are still read."""
    if resize_filter is not None and resize_filter not in RESIZE_FILTERS:
        raise InputError(f"resize filter {resize_filter!r} is unknown; use one of {sorted(RESIZE_FILTERS)}")
    resize = Resize((shape[1], shape[2]), resize_filter) if resize_filter else None
    out = []
    for path in paths:
        try:
            out.append(QueryImage(str(path), read_query_image(path, shape, dataset, resize_filter), None, resize))
        except InputError as err:
            out.append(QueryImage(str(path), None, str(err), resize))
    return out
