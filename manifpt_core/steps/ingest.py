"""Step 1, sample ingestion: real and generated images into the image store plus Parquet manifests.

Each image store holds its manifest (``manifest.parquet``), so the two are committed in one atomic step and a
reader of the images reads their manifest; a copy is then published to ``manifests/<source>.parquet`` for SQL.

Real rows are ordered reference first, then the real *class* samples, so a
reference row number is also its FAISS id. The two sets are disjoint by
origin and by content: a class sample whose pixels equal a reference image's
is dropped, since it would be its own nearest neighbour.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from manifpt_core.config import Settings
from manifpt_core.errors import InputError
from manifpt_core.names import REAL
from manifpt_core.sources import (
    FolderImages,
    Resize,
    SkippedFile,
    fashion_mnist_dir,
    folder_labels,
    load_fashion_mnist,
    observe_folder,
    read_image_folder,
)
from manifpt_core.sources.idx import FASHION_MNIST_SPLITS
from manifpt_core.steps.generators import model_folder, sample_generator
from manifpt_core.steps.sanity import FD_SPACE, frechet_to_real, real_floor
from manifpt_core.store import (
    Outcome,
    Store,
    assign_splits,
    build_table,
    create_rows,
    manifest_record,
    run_cached,
    write_manifest,
)
from manifpt_core.store.cache import is_planning
from manifpt_core.store.file_hashes import FileHashCache, Observation, hash_files
from manifpt_core.store.hashing import rows_hash
from manifpt_core.store.layout import IMAGES_MANIFEST
from manifpt_core.store.manifest import publish_manifest
from manifpt_core.store.records import ImagesSummary

logger = logging.getLogger(__name__)

INGEST_VERSION = "2"


def _resize(settings: Settings) -> Resize | None:
    src = settings.source
    return Resize(src.resize, src.resize_filter) if src.resize else None


def observe_real_source(settings: Settings, cache: FileHashCache | None = None) -> Observation:
    """The real source's content hash (the real images' input version), of its idx files or its folder real/;
    with a ``cache``, unchanged files are not read again (the hash is the same)."""
    src = settings.source
    if src.kind == "fashion_mnist":
        directory = fashion_mnist_dir(src.path)
        files = sorted(p for p in directory.iterdir() if p.name.split(".")[0] in
                       {name for pair in FASHION_MNIST_SPLITS.values() for name in pair})
        digests, n_read = hash_files(directory, [p.name for p in files], cache)
        content_hash = hashlib.sha256("".join(f"{p.name}:{d}" for p, d in zip(files, digests)).encode()).hexdigest()
        return Observation(content_hash, len(files), n_read)
    return observe_folder(Path(src.path) / REAL, cache, settings.follow_symlinks, src.path)


def real_source_hash(settings: Settings, cache: FileHashCache | None = None) -> str:
    """A hash that changes when the real source's files change: the content hash of :func:`observe_real_source`."""
    return observe_real_source(settings, cache).content_hash


def _read_folder(settings: Settings, folder: Path, root: Path) -> FolderImages:
    """A folder source's or model folder's images, read as the settings say (resize, on_bad_image,
    follow_symlinks judged against ``root``)."""
    return read_image_folder(folder, _resize(settings), progress=True, on_bad_image=settings.on_bad_image,
                             follow_symlinks=settings.follow_symlinks, root=root)


def _skipped_records(prefix: str, skipped: list[SkippedFile]) -> list[dict[str, str]]:
    """The skipped files as recorded (manifest metadata, step summary): paths as the manifest writes them."""
    return [{"path": f"{prefix}/{s.path}", "reason": s.reason} for s in skipped]


def _load_real(settings: Settings) -> tuple[tuple[np.ndarray, list[str], np.ndarray, np.ndarray, list[str],
                                                  np.ndarray], list[dict[str, str]]]:
    """Candidate reference and class images with their origins and labels, before subsampling, and the files
    skipped."""
    src = settings.source
    if src.kind == "fashion_mnist":
        if src.resize:
            raise InputError("source.resize applies to folder sources; Fashion-MNIST is used at its native 28x28")
        directory = fashion_mnist_dir(src.path)
        train_x, train_y = load_fashion_mnist(directory, "train")
        test_x, test_y = load_fashion_mnist(directory, "test")
        keep_train, keep_test = np.arange(len(train_x)), np.arange(len(test_x))
        if src.classes is not None:
            keep_train = np.flatnonzero(np.isin(train_y, src.classes))
            keep_test = np.flatnonzero(np.isin(test_y, src.classes))
        ref_origin = [f"fashion_mnist/train/{i}" for i in keep_train]
        cls_origin = [f"fashion_mnist/test/{i}" for i in keep_test]
        return (train_x[keep_train], ref_origin, train_y[keep_train],
                test_x[keep_test], cls_origin, test_y[keep_test]), []
    # A folder of real images has no given reference/class split: rank by origin hash, reference first.
    loaded = _read_folder(settings, Path(src.path) / REAL, Path(src.path))
    images, paths = loaded.images, loaded.paths
    origins = [f"real/{p}" for p in paths]
    n_class = min(settings.n_real_class, len(images) // 3)
    order = sorted(range(len(images)), key=lambda i: hashlib.sha256(origins[i].encode()).hexdigest())
    cls_idx, ref_idx = np.array(order[:n_class]), np.array(order[n_class:])
    labels, _ = folder_labels(paths)  # class subfolders of real/ give labels (the sl space trains on them)
    return (images[ref_idx], [origins[i] for i in ref_idx], labels[ref_idx],
            images[cls_idx], [origins[i] for i in cls_idx], labels[cls_idx]), _skipped_records(REAL, loaded.skipped)


def _pick(n_have: int, n_want: int, rng: np.random.Generator, what: str) -> np.ndarray:
    if n_have < n_want:
        raise InputError(f"{what}: {n_want} samples requested but only {n_have} available; lower it in the config")
    return np.sort(rng.permutation(n_have)[:n_want])


def _bad_image_settings(settings: Settings, reads_folder: bool) -> dict[str, str]:
    """``on_bad_image`` enters the step's settings only when it skips (and the source is a folder), so that the
    stores made before it existed keep their fingerprints."""
    return {"on_bad_image": "skip"} if reads_folder and settings.on_bad_image == "skip" else {}


def ingest_real(store: Store, settings: Settings) -> Outcome:
    """Real images → ``images/real.zarr`` with its manifest inside, published to ``manifests/real.parquet``
    (reference rows first)."""
    inputs = {"real_source": real_source_hash(settings, FileHashCache.in_store(store.paths.root))}
    step_settings = {
        "source": {"kind": settings.source.kind, "resize": settings.source.resize, "filter": settings.source.resize_filter,
                   "classes": settings.source.classes},
        "n_reference": settings.n_reference,
        "n_real_class": settings.n_real_class,
        "data_seed": settings.data_seed,
        "chunk_rows": settings.chunk_rows,
        **_bad_image_settings(settings, settings.source.kind == "folder"),
    }
    manifest_path = store.paths.source_manifest(REAL)

    def compute(tmp: Path, fp: str) -> tuple[str, ImagesSummary]:
        (ref_x, ref_o, ref_y, cls_x, cls_o, cls_y), skipped = _load_real(settings)
        rng = np.random.default_rng(settings.data_seed)
        ref_i = _pick(len(ref_x), settings.n_reference, rng, "n_reference")
        ref_hashes = rows_hash(ref_x[ref_i])
        # Drop class candidates that duplicate a reference image, then draw the class set.
        known = set(ref_hashes)
        cls_hashes_all = rows_hash(cls_x)
        keep = np.array([h not in known for h in cls_hashes_all])
        n_dupes = int((~keep).sum())
        cls_pool = np.flatnonzero(keep)
        cls_i = cls_pool[_pick(len(cls_pool), settings.n_real_class, rng, "n_real_class")]
        images = np.concatenate([ref_x[ref_i], cls_x[cls_i]])
        origins = [ref_o[i] for i in ref_i] + [cls_o[i] for i in cls_i]
        hashes = ref_hashes + [cls_hashes_all[i] for i in cls_i]
        labels = np.concatenate([ref_y[ref_i], cls_y[cls_i]])
        splits = ["reference"] * len(ref_i) + assign_splits([cls_o[i] for i in cls_i])
        content_hash = _write_images(tmp, images, settings.chunk_rows)
        floor = real_floor(images[: len(ref_i)], images[len(ref_i) :], settings.data_seed)
        table = build_table(REAL, origins, hashes, splits, images.shape[1:], labels)
        _write_inner_manifest(tmp, table, fp, content_hash, skipped)
        return content_hash, ImagesSummary(
            n_samples=len(images), image_shape=list(images.shape[1:]), manifest=str(manifest_path),
            frechet_space=FD_SPACE, n_reference=len(ref_i), n_real_class=len(cls_i),
            dropped_duplicates_of_reference=n_dupes, frechet_real_floor=floor, skipped=skipped)

    return _run_with_manifest(store, REAL, inputs, step_settings, compute)


def _write_inner_manifest(tmp: Path, table, fp: str, content_hash: str, skipped: list[dict[str, str]]) -> None:
    """The manifest inside the image store being written (``tmp``), so that the two are committed together; its
    schema metadata records the fingerprint, the images' content hash and the files skipped."""
    write_manifest(table, tmp / IMAGES_MANIFEST,
                   {"fingerprint": fp, "content_hash": content_hash, "skipped": skipped})


def _run_with_manifest(store: Store, source: str, inputs: dict[str, str], step_settings: dict[str, Any],
                       compute) -> Outcome[ImagesSummary]:
    """run_cached for an image store that holds its manifest (one atomic commit for both), then the manifest's
    published copy at ``manifests/<source>.parquet`` (for SQL), replaced atomically when missing or out of date.

    A store written before the manifest moved inside the image store is valid with its published manifest."""
    inner, published = store.paths.images_manifest(source), store.paths.source_manifest(source)

    def manifest_matches(fp: str) -> bool:
        record = manifest_record(inner) if inner.is_file() else manifest_record(published)
        return record is not None and record.get("fingerprint") == fp

    outcome = run_cached(store.paths.images(source), "ingest", INGEST_VERSION, inputs, step_settings, compute,
                         ImagesSummary, manifest_matches)
    if not is_planning():  # planning (manifpt ls) writes nothing
        publish_manifest(inner, published)
    return outcome


def _write_images(path: Path, images: np.ndarray, chunk_rows: int) -> str:
    writer = create_rows(path, None, images.shape, np.uint8, chunk_rows)
    for start in range(0, len(images), chunk_rows * 4):
        writer.write(images[start : start + chunk_rows * 4])
    return writer.content_hash()


def load_model_images(store: Store, settings: Settings, model: str
                      ) -> tuple[np.ndarray, list[str], list[dict[str, str]]]:
    """The model's images and their origins, sampled from its zoo checkpoint or read from its folder, and the
    files of its folder that were skipped."""
    card = settings.card(model)
    if card is not None:
        images = sample_generator(store, card, settings.n_per_model, settings.device)
        return images, [f"zoo/{model}/{i}" for i in range(len(images))], []
    folder = model_folder(settings, model)
    loaded = _read_folder(settings, folder, folder.parent)
    return loaded.images, [f"{model}/{p}" for p in loaded.paths], _skipped_records(model, loaded.skipped)


def ingest_generated(store: Store, settings: Settings, model: str) -> Outcome[ImagesSummary]:
    """A generative model's images → ``images/<model>.zarr`` with its manifest inside, published to
    ``manifests/<model>.parquet``."""
    source, real = store.model(model), store.real
    real_record = real.record
    inputs = {
        "generator": store.generator(model).content_hash,
        "real_images": real_record.content_hash,  # the sanity distance is measured against them
    }
    step_settings = {"n_per_model": settings.n_per_model, "chunk_rows": settings.chunk_rows,
                     "resize": settings.source.resize, "filter": settings.source.resize_filter,
                     **_bad_image_settings(settings, settings.card(model) is None)}
    manifest_path = store.paths.source_manifest(source.name)

    def compute(tmp: Path, fp: str) -> tuple[str, ImagesSummary]:
        images, origins, skipped = load_model_images(store, settings, model)
        real_shape = real_record.summary.shape
        if tuple(images.shape[1:]) != real_shape:
            raise InputError(
                f"model {model!r} images are {tuple(images.shape[1:])} (C, H, W) but the real images are "
                f"{real_shape}; " + ("set source.resize so that all sources share one size and channel count"
                                      if settings.source.kind == "folder" else
                                      "convert its images to the real images' size and mode (a Fashion-MNIST "
                                      "source is used at its native 28x28 grayscale)")
            )
        content_hash = _write_images(tmp, images, settings.chunk_rows)
        table = build_table(model, origins, rows_hash(images), assign_splits(origins), images.shape[1:])
        _write_inner_manifest(tmp, table, fp, content_hash, skipped)
        fd = frechet_to_real(images, real.reference_images(), real.query_images())
        logger.info("%s: Fréchet distance to held-out real images %.3f (real floor %.3f)",
                    model, fd, real_record.summary.frechet_real_floor)
        return content_hash, ImagesSummary(n_samples=len(images), image_shape=list(images.shape[1:]),
                                           manifest=str(manifest_path), frechet_space=FD_SPACE, frechet_to_real=fd,
                                           skipped=skipped)

    return _run_with_manifest(store, model, inputs, step_settings, compute)
