"""Model folders: one folder of images per generative model, in a GM-CIFAR10-style benchmark (``<root>/real/``
beside ``<root>/<model>/``) or in a models folder (the setting ``models_path``).

A folder that cannot be a model (a name that breaks the model-name rule, ``real`` under ``models_path``, a
symbolic link leaving the root) is reported and skipped, never a reason to stop: the other models are found.
Each skipped folder carries the reason and the fix, for the discovery sensor's tick and ``manifpt ls``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifpt_core.errors import InputError
from manifpt_core.names import NAME_RULE, REAL
from manifpt_core.sources import links
from manifpt_core.zoo.cards import DESIGN_FACTORS, check_factors

logger = logging.getLogger(__name__)

MODEL_NAME_PATTERN = NAME_RULE
# A model folder's optional card: its design factors (not an image, so never ingested).
FOLDER_CARD = "card.json"
_FOLDER_CARD_KEYS = ("factors", "family", "notes")


@dataclass(frozen=True)
class SkippedFolder:
    """A folder that was not taken as a model: where it is, and why (with the fix)."""

    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ModelFolders:
    """The model folders of one root, by name (sorted), and the folders skipped there."""

    models: dict[str, Path] = field(default_factory=dict)
    skipped: list[SkippedFolder] = field(default_factory=list)


@dataclass(frozen=True)
class FolderCard:
    """A model folder's ``card.json``: the design factors it gives (any subset of :data:`DESIGN_FACTORS`), and
    as free text the model's family and notes, e.g. ``{"factors": {"loss": "hinge"}, "family": "SNGAN"}``."""

    factors: dict[str, str]
    family: str | None = None
    notes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-safe data; the free-text keys only when given."""
        extra = {k: v for k, v in (("family", self.family), ("notes", self.notes)) if v is not None}
        return {"factors": dict(self.factors), **extra}


def _card_error(path: Path, problem: str) -> InputError:
    example = '{"factors": {"upsampling": "transposed_conv", "loss": "hinge"}, "family": "my GAN"}'
    return InputError(f"{path}: {problem}. Fix: write the card as a JSON object like {example} (keys "
                      f"{', '.join(_FOLDER_CARD_KEYS)}), or delete the file if the model's design is unknown.")


def read_folder_card(folder: str | os.PathLike[str], follow_symlinks: bool = False,
                     root: str | os.PathLike[str] | None = None) -> FolderCard | None:
    """The :data:`FOLDER_CARD` of a model folder, checked like a zoo card's factors; None when there is none.

    A card that is a symbolic link leaving ``root`` (the folder itself when not given) is refused unless
    ``follow_symlinks``, as the folder's images are.

    Raises:
        InputError: naming the file: it is not a JSON object, has a key other than factors, family and notes,
            a free-text key that is not a string, or a design factor or value outside :data:`DESIGN_FACTORS`.
    """
    path = Path(folder) / FOLDER_CARD
    if not path.exists():
        return None
    if not follow_symlinks and links.leaves(path, folder if root is None else root):
        raise InputError(links.refusal(path, folder if root is None else root))
    if not path.is_file():
        raise _card_error(path, "is not a file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _card_error(path, f"is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise _card_error(path, f"holds a JSON {type(data).__name__}, not an object")
    unknown = sorted(k for k in data if k not in _FOLDER_CARD_KEYS)
    if unknown:
        raise _card_error(path, f"has unknown key(s) {', '.join(map(repr, unknown))}")
    factors = data.get("factors", {})
    if not isinstance(factors, dict):
        raise _card_error(path, f"'factors' must be an object of design factors, got {factors!r}")
    try:
        check_factors(factors)
    except InputError as err:
        raise InputError(f"{path}: {err}. Fix: correct the factor in the card, or leave it out if it is unknown "
                         f"(design factors: {', '.join(DESIGN_FACTORS)})") from err
    for key in ("family", "notes"):
        if key in data and not isinstance(data[key], str):
            raise _card_error(path, f"{key!r} must be a string (free text), got {data[key]!r}")
    # In DESIGN_FACTORS order, so that the same card written in another order is the same card.
    ordered = {key: factors[key] for key in DESIGN_FACTORS if key in factors}
    return FolderCard(ordered, data.get("family"), data.get("notes"))


def suggest_model_name(name: str) -> str:
    """A name that follows the model-name rule, close to ``name``."""
    suggestion = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).lstrip("_-")[:64]
    return suggestion or "model_1"


def _name_problem(child: Path, root: Path) -> str | None:
    if child.name == REAL or MODEL_NAME_PATTERN.fullmatch(child.name) is not None:
        return None
    return (f"model folder name {child.name!r} does not match {MODEL_NAME_PATTERN.pattern} "
            "(lowercase letters, digits, '_' and '-', at most 64 characters, starting with a letter or digit), "
            "because it becomes a file name and partition key. "
            f"Fix: rename the folder (e.g. to {suggest_model_name(child.name)!r}) or move it out of {root}.")


def _scan(root: Path, follow_symlinks: bool) -> ModelFolders:
    """The subfolders of ``root`` that name a model (``real`` included), and those skipped, sorted by name.

    Hidden folders and plain files are ignored silently.
    """
    found = ModelFolders()
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if child.name.startswith(".") or not child.is_dir():
            continue
        if child.is_symlink() and not follow_symlinks and links.leaves(child, root):
            found.skipped.append(SkippedFolder(child, links.refusal(child, root)))
            continue
        problem = _name_problem(child, root)
        if problem is not None:
            found.skipped.append(SkippedFolder(child, problem))
            continue
        found.models[child.name] = child
    for skipped in found.skipped:
        logger.warning("model folder skipped: %s", skipped)
    return found


def scan_benchmark(root: str | os.PathLike[str], follow_symlinks: bool = False) -> ModelFolders:
    """The folders of a GM-CIFAR10-style benchmark: ``<root>/real/`` (real images) first, then one
    ``<root>/<model>/`` per generative model, sorted by name, and the folders skipped (:class:`SkippedFolder`).

    Hidden folders and plain files in ``root`` are ignored. Folders are not opened here: an empty one is reported
    when loaded.

    Raises:
        InputError: ``root`` is missing, or has no usable ``real`` folder (the real images cannot be skipped).
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"Benchmark root {root} does not exist. Fix: check the path (and the config key "
                         "source.path).")
    if not root.is_dir():
        raise InputError(f"Benchmark root {root} is not a directory. Fix: point to the folder that holds the images.")
    found = _scan(root, follow_symlinks)
    if REAL not in found.models:
        refused = next((s for s in found.skipped if s.path.name == REAL), None)
        if refused is not None:
            raise InputError(f"{refused.path}: {refused.reason}")
        raise InputError(
            f"Benchmark root {root} has no 'real' folder. Fix: put the real images in {root / 'real'}/ "
            "and each model's generated images in <root>/<model_name>/."
        )
    if len(found.models) == 1:
        logger.warning("Benchmark root %s has a 'real' folder but no model folder", root)
    models = dict(found.models)
    real = models.pop(REAL)
    return ModelFolders({REAL: real, **models}, found.skipped)


def scan_models(root: str | os.PathLike[str], follow_symlinks: bool = False) -> ModelFolders:
    """The model folders of a models folder (the setting ``models_path``), sorted by name, and the folders
    skipped (a bad name, ``real``, a link leaving it without ``follow_symlinks``).

    Hidden folders and plain files in ``root`` are ignored; folders are not opened here (an empty one is
    reported when loaded). A relative ``root`` is read from the current directory, like ``source.path``.

    Raises:
        InputError: ``root`` is missing or not a directory.
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
    found = _scan(root, follow_symlinks)
    if REAL in found.models:
        child = found.models.pop(REAL)
        reserved = SkippedFolder(child, (
            f"the folder name {REAL!r} is reserved for the real images, which come from the source "
            "(source.kind, source.path), never from models_path. "
            f"Fix: rename the folder (e.g. to 'real_model') or move it out of {root}."))
        logger.warning("model folder skipped: %s", reserved)
        found.skipped.append(reserved)
        found.skipped.sort(key=lambda s: s.path.name)
    if not found.models:
        logger.warning("models_path %s holds no model folder", root)
    return found


def discover_benchmark(root: str | os.PathLike[str], follow_symlinks: bool = False) -> dict[str, Path]:
    """``{"real": path, model: path, ...}`` of :func:`scan_benchmark`, "real" first (skipped folders are
    logged)."""
    return scan_benchmark(root, follow_symlinks).models


def discover_models(root: str | os.PathLike[str], follow_symlinks: bool = False) -> dict[str, Path]:
    """``{model: path, ...}`` of :func:`scan_models`, sorted by name; empty when ``root`` holds no model folder
    (skipped folders are logged)."""
    return scan_models(root, follow_symlinks).models
