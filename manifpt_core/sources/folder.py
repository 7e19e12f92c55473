"""Reading folders of images (real or generated) into uint8 ``(N, C, H, W)`` arrays.

Images keep their native channels: grayscale ("L") gives C=1, "RGB" gives C=3.
Other modes are refused rather than silently converted, because a conversion
(e.g. dropping alpha, flattening a palette) changes the pixels a fingerprint is
computed from. Any resize is explicit (:class:`Resize`) and recordable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from manifpt_core.errors import InputError
from manifpt_core.names import NAME_RULE, REAL
from manifpt_core.store.file_hashes import FileHashCache, Observation, hash_files

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")

RESIZE_FILTERS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}

MODEL_NAME_PATTERN = NAME_RULE

_CHANNELS = {"L": 1, "RGB": 3}
# What PIL raises on unreadable or corrupt files; re-raised as InputError with the file name.
PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error,
               Image.DecompressionBombError)


@dataclass(frozen=True)
class Resize:
    """An explicit resize applied to every image of a folder.

    Attributes:
        size: target ``(H, W)`` in pixels, both positive.
        filter: one of ``"nearest"``, ``"bilinear"``, ``"bicubic"``, ``"lanczos"``, ``"box"``.
    """

    size: tuple[int, int]
    filter: str = "bicubic"

    def __post_init__(self) -> None:
        size = tuple(self.size)
        if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                                     for s in size):
            raise InputError(f"Resize size {self.size!r} is invalid. Fix: give (H, W) as two positive integers.")
        # Normalise lists (e.g. from JSON config) to a hashable tuple of ints.
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.filter not in RESIZE_FILTERS:
            raise InputError(f"Resize filter {self.filter!r} is unknown. Fix: use one of {sorted(RESIZE_FILTERS)}.")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able record of this resize, for fingerprints and metadata."""
        return {"size": [self.size[0], self.size[1]], "filter": self.filter}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Resize:
        """Rebuild a resize from :meth:`to_dict` output (validated)."""
        try:
            return cls(size=tuple(record["size"]), filter=record["filter"])
        except (KeyError, TypeError) as err:
            raise InputError(
                f"Resize record {record!r} is invalid. Fix: give {{'size': [H, W], 'filter': name}}."
            ) from err


def _require_dir(folder: Path, what: str) -> None:
    if not folder.exists():
        raise InputError(f"{what} {folder} does not exist. Fix: check the path (and the config key source.path).")
    if not folder.is_dir():
        raise InputError(f"{what} {folder} is not a directory. Fix: point to the folder that holds the images.")


def list_image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """List the image files in ``folder`` and its subfolders, sorted by relative path.

    A file counts when its suffix is in :data:`IMAGE_SUFFIXES` (any case).
    Hidden files and folders (name starting with '.') are skipped, because
    they are tool debris (e.g. macOS ``._x.png``, ``.ipynb_checkpoints``).

    Raises:
        InputError: the folder is missing, or holds no image file.
    """
    folder = Path(folder)
    return [folder / name for name in image_names(folder)]


def image_names(folder: str | os.PathLike[str]) -> list[str]:
    """The image files of :func:`list_image_files` as POSIX paths relative to ``folder``, sorted.

    Symbolic links to files count, links to folders are not followed, and a subfolder that cannot be read is
    left out with a warning (as pathlib's ``rglob``, which this scan replaced for speed: it runs at every
    observation, over every image).
    """
    folder = Path(folder)
    _require_dir(folder, "Image folder")
    found: list[str] = []
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except PermissionError as err:
            logger.warning("%s cannot be read (%s): its images are left out", directory, err)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append((f"{prefix}{entry.name}/", entry.path))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                found.append(prefix + entry.name)
    if not found:
        raise InputError(
            f"Image folder {folder} holds no image file (accepted suffixes: {', '.join(IMAGE_SUFFIXES)}, "
            "any case, in the folder or its subfolders). Fix: put the images there or point to the right folder."
        )
    found.sort()
    return found


def _read_image(path: Path, resize: Resize | None) -> np.ndarray:
    """Read one image as uint8 ``(H, W)`` or ``(H, W, 3)``, resized if asked."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == "1":
                # 1-bit is grayscale with two levels; widening it to L loses nothing.
                img = img.convert("L")
            if img.mode in _CHANNELS:
                if resize is not None:
                    img = img.resize((resize.size[1], resize.size[0]), RESIZE_FILTERS[resize.filter])
                return np.asarray(img, dtype=np.uint8)
    except PIL_ERRORS as err:
        raise InputError(
            f"{path}: cannot read image ({type(err).__name__}: {err}). Fix: replace or delete the file."
        ) from err
    raise InputError(
        f"{path}: image mode {mode!r} is not supported; only 'L' (grayscale) and 'RGB' are, "
        "so that no channel is silently dropped or invented. Fix: convert the images, e.g. "
        "Image.open(p).convert('RGB').save(p) (or .convert('L') for grayscale)."
    )


def load_image_folder(
    folder: str | os.PathLike[str], resize: Resize | None = None, progress: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Load every image of a folder (see :func:`list_image_files`) into one array.

    Args:
        folder: the folder to read, recursively.
        resize: resize every image to ``resize.size`` with ``resize.filter``;
            ``None`` keeps native sizes, which must then all agree.
        progress: show a tqdm progress bar.

    Returns:
        ``(images, paths)``: uint8 ``(N, C, H, W)`` with C=1 for grayscale and
        C=3 for RGB, and the POSIX paths relative to ``folder``, in the same order.
        WebP has no grayscale mode, so a grayscale WebP reads back as RGB (C=3).

    Raises:
        InputError: a missing or empty folder, an unreadable image, a mode other
            than L/RGB/1, mixed modes, or mixed sizes without ``resize``.
    """
    folder = Path(folder)
    files = list_image_files(folder)
    rel_paths = [path.relative_to(folder).as_posix() for path in files]
    out: np.ndarray | None = None
    first_mode: tuple[str, str] | None = None  # (mode, relative path of the first file)
    first_size: tuple[tuple[int, int], str] | None = None  # ((H, W) native, relative path)
    for i, (path, rel) in enumerate(tqdm(list(zip(files, rel_paths)), desc=f"Loading {folder.name}",
                                         unit="img", disable=not progress)):
        if resize is None:
            pixels = _read_image(path, None)
            size = pixels.shape[:2]
        else:
            pixels = _read_image(path, resize)
            size = resize.size
        mode = "L" if pixels.ndim == 2 else "RGB"
        if first_mode is None:
            first_mode = (mode, rel)
            first_size = (size, rel)
            out = np.empty((len(files), _CHANNELS[mode], size[0], size[1]), dtype=np.uint8)
        if mode != first_mode[0]:
            raise InputError(
                f"Image folder {folder} mixes modes: {first_mode[1]} is {first_mode[0]!r} but {rel} is {mode!r}. "
                "Fix: convert all images to one mode, e.g. Image.open(p).convert('RGB').save(p) "
                "(or .convert('L') for grayscale)."
            )
        if size != first_size[0]:
            (h0, w0), rel0 = first_size
            raise InputError(
                f"Image folder {folder} mixes sizes: {rel0} is {h0}x{w0} (HxW) but {rel} is "
                f"{size[0]}x{size[1]}. Fix: set a resize, e.g. Resize((32, 32), \"bicubic\")."
            )
        out[i] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    assert out is not None  # list_image_files guarantees at least one file
    logger.info("Loaded %d images %s from %s (resize=%s)", len(files), out.shape[1:], folder,
                resize.to_dict() if resize else None)
    return out, rel_paths


def folder_labels(rel_paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """Class labels from class subfolders: ``real/<class>/<file>`` gives each file its class's rank.

    Returns ``(labels int64 (N,), class names sorted)``. When any file lies
    directly in the folder there are no classes: every label is -1 and the list is empty.
    """
    parts = [rel.split("/") for rel in rel_paths]
    if not parts or any(len(p) < 2 for p in parts):
        return np.full(len(rel_paths), -1, dtype=np.int64), []
    names = sorted({p[0] for p in parts})
    rank = {name: i for i, name in enumerate(names)}
    return np.array([rank[p[0]] for p in parts], dtype=np.int64), names


def _suggest_model_name(name: str) -> str:
    suggestion = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).lstrip("_-")[:64]
    return suggestion or "model_1"


def _model_subfolders(root: Path) -> list[Path]:
    """The subfolders of ``root`` that name a model (``real`` included), sorted by name.

    Hidden folders and plain files are ignored; a folder name that breaks the model-name rule is an InputError.
    """
    found = []
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if child.name.startswith(".") or not child.is_dir():
            continue
        if child.name != REAL and MODEL_NAME_PATTERN.fullmatch(child.name) is None:
            raise InputError(
                f"{child}: model folder name {child.name!r} does not match {MODEL_NAME_PATTERN.pattern} "
                "(lowercase letters, digits, '_' and '-', at most 64 characters, starting with a letter or digit), "
                "because it becomes a file name and partition key. "
                f"Fix: rename the folder (e.g. to {_suggest_model_name(child.name)!r}) or move it out of {root}."
            )
        found.append(child)
    return found


def discover_benchmark(root: str | os.PathLike[str]) -> dict[str, Path]:
    """Find the image folders of a GM-CIFAR10-style benchmark.

    The layout is ``<root>/real/`` (real images) and one ``<root>/<model>/`` per
    generative model. Hidden folders and plain files in ``root`` are ignored.
    Folders are not opened here: an empty one is reported when loaded.

    Returns:
        ``{"real": path, model: path, ...}``, "real" first, then the models sorted by name.

    Raises:
        InputError: ``root`` is missing, has no ``real`` folder, or a model folder
            name does not match ``^[a-z0-9][a-z0-9_-]{0,63}$`` (names become file
            names and partition keys).
    """
    root = Path(root)
    _require_dir(root, "Benchmark root")
    models = {child.name: child for child in _model_subfolders(root)}
    if REAL not in models:
        raise InputError(
            f"Benchmark root {root} has no 'real' folder. Fix: put the real images in {root / 'real'}/ "
            "and each model's generated images in <root>/<model_name>/."
        )
    if len(models) == 1:
        logger.warning("Benchmark root %s has a 'real' folder but no model folder", root)
    real = models.pop(REAL)
    return {REAL: real, **models}


def discover_models(root: str | os.PathLike[str]) -> dict[str, Path]:
    """Find the model folders of a models folder (the setting ``models_path``): one ``<root>/<model>/`` per
    generative model, beside any real source.

    Hidden folders and plain files in ``root`` are ignored; folders are not opened here (an empty one is
    reported when loaded). A relative ``root`` is read from the current directory, like ``source.path``.

    Returns:
        ``{model: path, ...}`` sorted by name; empty when ``root`` holds no model folder.

    Raises:
        InputError: ``root`` is missing or not a directory, a folder name does not match
            ``^[a-z0-9][a-z0-9_-]{0,63}$``, or a folder is named ``real`` (reserved for the real images).
    """
    root = Path(root)
    shown = str(root) if root.is_absolute() else f"{root} (relative to the current directory {Path.cwd()})"
    if not root.exists():
        raise InputError(
            f"models_path {shown} does not exist. Fix: create it with one folder of images per model "
            "(<models_path>/<model_name>/), correct the setting models_path, or remove it."
        )
    if not root.is_dir():
        raise InputError(
            f"models_path {shown} is not a directory. Fix: point the setting models_path to the folder that "
            "holds one folder of images per model."
        )
    models: dict[str, Path] = {}
    for child in _model_subfolders(root):
        if child.name == REAL:
            raise InputError(
                f"{child}: the folder name {REAL!r} is reserved for the real images, which come from the source "
                "(source.kind, source.path), never from models_path. "
                f"Fix: rename the folder (e.g. to 'real_model') or move it out of {root}."
            )
        models[child.name] = child
    if not models:
        logger.warning("models_path %s holds no model folder", root)
    return models


def observe_folder(folder: str | os.PathLike[str], cache: FileHashCache | None = None) -> Observation:
    """The content hash of the folder's images: sha256 over (relative path, sha256 of the bytes) of each.

    It changes when an image is added, removed, renamed or edited, and only then:
    touching a file or rewriting it with the same bytes keeps it. It is the data
    version under which the folder is observed, and an input of its ingestion.
    With a ``cache``, an image whose size and times are those recorded is not read
    again (:mod:`manifpt_core.store.file_hashes`); the hash is the same.

    Raises:
        InputError: as :func:`list_image_files`.
    """
    folder = Path(folder)
    names = image_names(folder)
    digests, n_read = hash_files(folder, names, cache)
    digest = hashlib.sha256()
    for name, file_digest in zip(names, digests):
        # NUL and newline cannot be confused with path characters we accept as records.
        digest.update(f"{name}\0{file_digest}\n".encode())
    return Observation(digest.hexdigest(), len(names), n_read)


def folder_content_hash(folder: str | os.PathLike[str], cache: FileHashCache | None = None) -> str:
    """The content hash of :func:`observe_folder`."""
    return observe_folder(folder, cache).content_hash
