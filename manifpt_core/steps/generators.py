"""Generators: train a zoo entry on the real reference images, or observe a user's model folder.

A model folder is ``<source.path>/<model>/`` (folder source) or ``<models_path>/<model>/`` (any source).

Either way the output is ``generators/<model>/`` with a record whose content
hash versions everything downstream of that model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from manifpt_core.config import Settings
from manifpt_core.errors import InputError
from manifpt_core.figures import save_image_grid
from manifpt_core.names import REAL, check_model_name
from manifpt_core.sources import ModelFolders, SkippedFolder, observe_folder, scan_benchmark, scan_models
from manifpt_core.sources.model_folders import FolderCard, read_folder_card
from manifpt_core.store import (
    Outcome,
    Store,
    array_bytes_hash,
    canonical_json,
    run_cached,
)
from manifpt_core.store.file_hashes import FileHashCache, Observation
from manifpt_core.store.hashing import text_hash
from manifpt_core.store.layout import CHECKPOINT_FILE, GRID_FILE
from manifpt_core.store.records import GeneratorSummary
from manifpt_core.torch_helpers import resolve_device, resolve_precision
from manifpt_core.zoo import ModelCard, get_family, load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1"


def materialize_generator(store: Store, settings: Settings, model: str) -> Outcome[GeneratorSummary]:
    """Train (zoo entry) or fingerprint (model folder) one generative model."""
    store.model(model)  # checks the name: `real` is not a model
    card = settings.card(model)
    if card is None:
        return _observe_folder(store, settings, model)
    inputs = {"real_images": store.real.record.content_hash}

    def compute(tmp: Path, fp: str) -> tuple[str, GeneratorSummary]:
        reference = store.real.reference_images()
        device = resolve_device(settings.device)
        state = get_family(card.family).train(reference, card, device=device, progress=True)
        tmp.mkdir(parents=True)
        save_checkpoint(state, tmp / CHECKPOINT_FILE)
        (tmp / "card.json").write_text(json.dumps(card.to_dict(), indent=2, sort_keys=True))
        shape = tuple(int(v) for v in reference.shape[1:])
        preview = get_family(card.family).sample(state, card, shape, 64, seed=card.seed, device=device)
        save_image_grid(preview, tmp / GRID_FILE)
        content_hash = array_bytes_hash(np.concatenate([t.detach().cpu().numpy().ravel().view(np.uint8)
                                                        for t in state.values()]))
        return content_hash, GeneratorSummary(kind="zoo", family=card.family, image_shape=list(shape),
                                              trained_on=len(reference), card=card.to_dict(), grid=GRID_FILE)

    # The precision "auto" resolves to here: bf16 and fp32 training give different weights.
    precision = resolve_precision(card.train.precision, resolve_device(settings.device))
    return run_cached(store.paths.generator(model), "generator", GENERATOR_VERSION, inputs,
                      {"card": card.to_dict(), "device_kind": "any", "precision": precision}, compute,
                      GeneratorSummary)


def scan_model_folders(settings: Settings) -> ModelFolders:
    """Every model folder, by name: ``<source.path>/<model>/`` (folder source) and ``<models_path>/<model>/``,
    and the folders skipped there (a bad name, a link leaving its root without ``follow_symlinks``), each with
    its reason and fix: one bad folder never hides the others.

    A name found in both places is an InputError naming both folders: neither takes precedence.
    """
    found = ModelFolders()
    if settings.source.kind == "folder":
        bench = scan_benchmark(settings.source.path, settings.follow_symlinks)
        found.models.update({check_model_name(name, f"the folder {path}"): path
                             for name, path in bench.models.items() if name != REAL})
        found.skipped.extend(bench.skipped)
    if settings.models_path is not None:
        extra = scan_models(settings.models_path, settings.follow_symlinks)
        for name, path in extra.models.items():
            if name in found.models:
                raise InputError(
                    f"model {name!r} has two folders: {found.models[name]} (under source.path) and {path} (under "
                    "models_path); rename or move one of them, since a model name must be unique")
            found.models[name] = path
        found.skipped.extend(extra.skipped)
    return found


def model_folders(settings: Settings) -> dict[str, Path]:
    """The model folders of :func:`scan_model_folders`, by name."""
    return scan_model_folders(settings).models


def skipped_model_folders(settings: Settings) -> list[SkippedFolder]:
    """The folders under ``source.path`` (folder source) or ``models_path`` that were not taken as models, each
    with its reason and fix (shown by the discovery sensor and ``manifpt ls``)."""
    return scan_model_folders(settings).skipped


def _check_not_both(settings: Settings, folders: dict[str, Path]) -> None:
    clash = sorted(card.name for card in settings.zoo if card.name in folders)
    if clash:
        name = clash[0]
        raise InputError(
            f"model {name!r} is both a zoo entry (the config's zoo) and the folder {folders[name]}; rename the "
            f"zoo entry or the folder, since a model name must be unique (all such names: {clash})")


def configured_models(settings: Settings) -> list[str]:
    """The dataset's generative models, sorted: its zoo entries plus every model folder (under source.path
    for a folder source, and under models_path when set)."""
    return configured_and_skipped(settings)[0]


def configured_and_skipped(settings: Settings) -> tuple[list[str], list[SkippedFolder]]:
    """:func:`configured_models` and :func:`skipped_model_folders` from one look at the folders."""
    found = scan_model_folders(settings)
    _check_not_both(settings, found.models)
    return sorted([card.name for card in settings.zoo] + list(found.models)), found.skipped


def model_set_version(models: list[str]) -> str:
    """The version of a dataset's set of models: it changes when a model is added or removed."""
    return text_hash("models:" + ",".join(sorted(models)))


def model_folder(settings: Settings, model: str) -> Path:
    """The folder of a model that is not a zoo entry; an unknown model names the three ways to add it, a skipped
    folder its reason."""
    check_model_name(model)
    found = scan_model_folders(settings)
    _check_not_both(settings, found.models)
    if model in found.models:
        return found.models[model]
    if settings.card(model) is not None:
        raise InputError(f"model {model!r} is a zoo entry: it is trained from its card and has no image folder")
    skipped = next((s for s in found.skipped if s.path.name == model), None)
    if skipped is not None:
        raise InputError(f"model {model!r}: its folder is skipped: {skipped}")
    where = [f"<source.path>/{model}/ (source.path = {settings.source.path})" if settings.source.kind == "folder"
             else f"<source.path>/{model}/ with source.kind = 'folder'",
             f"<models_path>/{model}/ (models_path = {settings.models_path})" if settings.models_path is not None
             else f"<models_path>/{model}/ after setting models_path"]
    raise InputError(
        f"model {model!r} is neither a zoo entry ({[c.name for c in settings.zoo]}) nor a model folder; add it "
        f"to the config's zoo, or create {where[0]}, or create {where[1]}"
    )


def model_folder_card(settings: Settings, folder: Path) -> FolderCard | None:
    """The model folder's ``card.json`` (its design factors), checked; None when it has none."""
    return read_folder_card(folder, settings.follow_symlinks, folder.parent)


def observe_model_folder(settings: Settings, folder: Path, cache: FileHashCache | None = None) -> Observation:
    """The content hash of a model folder: its images, and its ``card.json`` when it has one (a changed card
    changes the hash, so the model is observed and reported again), its links judged against the folder it was
    found in (``source.path`` or ``models_path``) and ``follow_symlinks``."""
    images = observe_folder(folder, cache, settings.follow_symlinks, folder.parent)
    card = model_folder_card(settings, folder)
    if card is None:  # the images' hash alone, as for a folder before cards existed
        return images
    content = text_hash(f"folder:{images.content_hash}\ncard:{canonical_json(card.to_dict())}")
    return Observation(content, images.n_files, images.n_read)


def observe_model_source(settings: Settings, model: str, cache: FileHashCache | None = None) -> Observation:
    """The version of what defines a model: its zoo card (family, seed, factors, training settings; no file), or
    the content of its folder (with a ``cache``, unchanged files are not read again). Observed by the
    ``model_source`` asset; it changes exactly when the model does."""
    card = settings.card(check_model_name(model))
    if card is not None:
        return Observation(text_hash("zoo-card:" + canonical_json(card.to_dict())), n_files=0, n_read=0)
    return observe_model_folder(settings, model_folder(settings, model), cache)


def model_source_hash(settings: Settings, model: str, cache: FileHashCache | None = None) -> str:
    """The content hash of :func:`observe_model_source`."""
    return observe_model_source(settings, model, cache).content_hash


def _observe_folder(store: Store, settings: Settings, model: str) -> Outcome[GeneratorSummary]:
    folder = model_folder(settings, model)
    folder_hash = observe_model_folder(settings, folder, FileHashCache.in_store(store.paths.root)).content_hash
    card = model_folder_card(settings, folder)

    def compute(tmp: Path, fp: str) -> tuple[str, GeneratorSummary]:
        tmp.mkdir(parents=True)
        # The card's factors are the summary's (GeneratorSummary.factors); its free-text family names the model.
        return folder_hash, GeneratorSummary(kind="folder", folder=str(folder),
                                             card=None if card is None else card.to_dict())

    return run_cached(store.paths.generator(model), "generator", GENERATOR_VERSION, {"folder": folder_hash}, {},
                      compute, GeneratorSummary)


def sample_generator(store: Store, card: ModelCard, n: int, device: str) -> np.ndarray:
    """``n`` uint8 samples from a trained zoo entry (seeded by the card, so reproducible)."""
    record = store.generator(card.name)
    state = load_checkpoint(store.paths.checkpoint(card.name))
    shape = tuple(record.summary.image_shape)
    # Samples use seed + 1, so they are not the preview grid's images.
    return get_family(card.family).sample(state, card, shape, n, seed=card.seed + 1, device=resolve_device(device))
