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
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from manifpt_core.errors import InputError
from manifpt_core.sources import links
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

_CHANNELS = {"L": 1, "RGB": 3}
BAD_IMAGE_POLICIES = ("error", "skip")  # the values of the setting on_bad_image
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


def list_image_files(folder: str | os.PathLike[str], follow_symlinks: bool = False,
                     root: str | os.PathLike[str] | None = None) -> list[Path]:
    """List the image files in ``folder`` and its subfolders, sorted by relative path.

    A file counts when its suffix is in :data:`IMAGE_SUFFIXES` (any case).
    Hidden files and folders (name starting with '.') are skipped, because
    they are tool debris (e.g. macOS ``._x.png``, ``.ipynb_checkpoints``).
    Symbolic links: see :func:`image_names`.

    Raises:
        InputError: the folder is missing, holds no image file, or is itself a link leaving ``root``.
    """
    folder = Path(folder)
    return [folder / name for name in image_names(folder, follow_symlinks, root)]


def image_names(folder: str | os.PathLike[str], follow_symlinks: bool = False,
                root: str | os.PathLike[str] | None = None) -> list[str]:
    """The image files of :func:`list_image_files` as POSIX paths relative to ``folder``, sorted.

    A subfolder that cannot be read is left out with a warning (as pathlib's ``rglob``, which this scan replaced
    for speed: it runs at every observation, over every image). Symbolic links (:mod:`.links`) are judged against
    ``root`` (the folder source or models folder; ``folder`` itself when not given): a link that stays inside
    counts when it points to a file and is not walked when it points to a folder (its images are listed under
    their own path); a link that leaves ``root`` is skipped with a warning naming it, unless ``follow_symlinks``,
    which follows every link (each real folder walked once, so a link to an ancestor cannot loop).
    """
    return scan_image_folder(folder, follow_symlinks, root)[0]


@dataclass(frozen=True)
class SkippedFile:
    """A file of an image folder that was not ingested: its path (POSIX, relative to the folder) and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def scan_image_folder(folder: str | os.PathLike[str], follow_symlinks: bool = False,
                      root: str | os.PathLike[str] | None = None) -> tuple[list[str], list[SkippedFile]]:
    """:func:`image_names`, and the links refused on the way (as skipped files)."""
    folder = Path(folder)
    _require_dir(folder, "Image folder")
    root = folder if root is None else Path(root)
    if not follow_symlinks and links.leaves(folder, root):
        raise InputError(f"Image folder {folder}: {links.refusal(folder, root)}")
    boundary, own = links.real(root), links.real(folder)
    walked = {own}
    found: list[str] = []
    refused: list[SkippedFile] = []
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except PermissionError as err:
            logger.warning("%s cannot be read (%s): its images are left out", directory, err)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            is_image = os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            if entry.is_symlink():
                target = links.real(entry.path)
                if not os.path.exists(target):  # a broken link is debris, never an image
                    continue
                if not follow_symlinks and not links.is_inside(target, boundary):
                    if is_image or os.path.isdir(target):
                        reason = links.refusal(entry.path, root)
                        logger.warning("%s", reason)
                        refused.append(SkippedFile(prefix + entry.name, reason))
                    continue
                if os.path.isdir(target):
                    # Inside the folder, the linked images are listed under their own path already.
                    if follow_symlinks and target not in walked and not links.is_inside(target, own):
                        walked.add(target)
                        pending.append((f"{prefix}{entry.name}/", entry.path))
                    continue
            elif entry.is_dir(follow_symlinks=False):
                if follow_symlinks:  # reached through a followed link, a folder may be met twice
                    target = links.real(entry.path)
                    if target in walked:
                        continue
                    walked.add(target)
                pending.append((f"{prefix}{entry.name}/", entry.path))
                continue
            if is_image and entry.is_file():
                found.append(prefix + entry.name)
    if not found:
        refused_note = (f" ({len(refused)} symbolic links leaving {root} were refused: {refused[0].reason})"
                        if refused else "")
        raise InputError(
            f"Image folder {folder} holds no image file (accepted suffixes: {', '.join(IMAGE_SUFFIXES)}, "
            "any case, in the folder or its subfolders)" + refused_note +
            ". Fix: put the images there or point to the right folder."
        )
    found.sort()
    return found, refused


class BadImageError(InputError):
    """A file with an image suffix that cannot be read as an image (``on_bad_image`` decides what follows)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}. Fix: replace or delete the file, or set on_bad_image = \"skip\" to "
                         "ingest the other images and record this one as skipped.")


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
        raise BadImageError(path, f"cannot read image ({type(err).__name__}: {err})") from err
    raise InputError(
        f"{path}: image mode {mode!r} is not supported; only 'L' (grayscale) and 'RGB' are, "
        "so that no channel is silently dropped or invented. Fix: convert the images, e.g. "
        "Image.open(p).convert('RGB').save(p) (or .convert('L') for grayscale)."
    )


@dataclass(frozen=True)
class FolderImages:
    """The images of a folder (uint8 ``(N, C, H, W)``), their POSIX paths relative to it, and the files skipped:
    links leaving the root, and with ``on_bad_image = "skip"`` the unreadable files."""

    images: np.ndarray
    paths: list[str]
    skipped: list[SkippedFile]


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
    loaded = read_image_folder(folder, resize, progress)
    return loaded.images, loaded.paths


def read_image_folder(folder: str | os.PathLike[str], resize: Resize | None = None, progress: bool = False, *,
                      on_bad_image: str = "error", follow_symlinks: bool = False,
                      root: str | os.PathLike[str] | None = None) -> FolderImages:
    """:func:`load_image_folder` with the settings of a folder source: ``on_bad_image`` (``"error"``: an
    unreadable file is an InputError naming it; ``"skip"``: it is left out and recorded with its reason),
    ``follow_symlinks`` and the ``root`` that links are judged against (:func:`image_names`).

    Only files that cannot be read as images are skipped: a mode other than L/RGB/1, mixed modes and mixed
    sizes stay errors, since they are a conversion the user must choose, not a damaged file.
    """
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise InputError(f"on_bad_image = {on_bad_image!r} is not one of {BAD_IMAGE_POLICIES}")
    folder = Path(folder)
    rel_paths, skipped = scan_image_folder(folder, follow_symlinks, root)
    kept: list[str] = []
    out: np.ndarray | None = None
    first_mode: tuple[str, str] | None = None  # (mode, relative path of the first file)
    first_size: tuple[tuple[int, int], str] | None = None  # ((H, W) native, relative path)
    for rel in tqdm(rel_paths, desc=f"Loading {folder.name}", unit="img", disable=not progress):
        try:
            pixels = _read_image(folder / rel, resize)
        except BadImageError as err:
            if on_bad_image == "error":
                raise
            logger.warning("%s: skipped (on_bad_image = \"skip\"): %s", err.path, err.reason)
            skipped.append(SkippedFile(rel, err.reason))
            continue
        size = pixels.shape[:2] if resize is None else resize.size
        mode = "L" if pixels.ndim == 2 else "RGB"
        if first_mode is None:
            first_mode = (mode, rel)
            first_size = (size, rel)
            out = np.empty((len(rel_paths), _CHANNELS[mode], size[0], size[1]), dtype=np.uint8)
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
        out[len(kept)] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        kept.append(rel)
    if out is None:
        raise InputError(
            f"Image folder {folder}: none of its {len(rel_paths)} image files can be read (on_bad_image = "
            f"\"skip\" skipped them all, e.g. {skipped[-1].path}: {skipped[-1].reason}). "
            "Fix: replace the files, or point to the right folder."
        )
    images = out[: len(kept)]
    if skipped:
        logger.warning("%s: %d files skipped (unreadable, or links leaving %s)", folder, len(skipped),
                       root if root is not None else folder)
    logger.info("Loaded %d images %s from %s (resize=%s)", len(kept), images.shape[1:], folder,
                resize.to_dict() if resize else None)
    return FolderImages(images, kept, skipped)


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


def observe_folder(folder: str | os.PathLike[str], cache: FileHashCache | None = None,
                   follow_symlinks: bool = False, root: str | os.PathLike[str] | None = None) -> Observation:
    """The content hash of the folder's images: sha256 over (relative path, sha256 of the bytes) of each.

    It changes when an image is added, removed, renamed or edited, and only then:
    touching a file or rewriting it with the same bytes keeps it. It is the data
    version under which the folder is observed, and an input of its ingestion.
    With a ``cache``, an image whose size and times are those recorded is not read
    again (:mod:`manifpt_core.store.file_hashes`); the hash is the same. Links leaving
    ``root`` are left out unless ``follow_symlinks`` (:func:`image_names`).

    Raises:
        InputError: as :func:`list_image_files`.
    """
    folder = Path(folder)
    names = image_names(folder, follow_symlinks, root)
    digests, n_read = hash_files(folder, names, cache)
    digest = hashlib.sha256()
    for name, file_digest in zip(names, digests):
        # NUL and newline cannot be confused with path characters we accept as records.
        digest.update(f"{name}\0{file_digest}\n".encode())
    return Observation(digest.hexdigest(), len(names), n_read)


def folder_content_hash(folder: str | os.PathLike[str], cache: FileHashCache | None = None,
                        follow_symlinks: bool = False, root: str | os.PathLike[str] | None = None) -> str:
    """The content hash of :func:`observe_folder`."""
    return observe_folder(folder, cache, follow_symlinks, root).content_hash
