"""FAISS indexes over the reference rows: flat (exact), IVF and HNSW, and their files.

Row numbers are the FAISS ids, so a neighbour id is a row of the reference array.
The IVF quantizer is trained with a seed, so the same reference builds the same
index. An HNSW graph is built by several threads whose order varies, so two builds
can link a few nodes differently; the exact re-rank of candidates hides most of it,
and the measured recall says how much is left.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import faiss
import numpy as np

from manifpt_core.errors import InputError
from manifpt_core.search.checks import check_matrix
from manifpt_core.search.settings import SearchSettings

logger = logging.getLogger(__name__)

# FAISS wants at least this many training points per IVF list.
MIN_POINTS_PER_LIST = 39


def build_flat_index(reference: np.ndarray) -> faiss.IndexFlatL2:
    """An exact L2 index over the reference vectors; FAISS ids are reference row numbers."""
    reference = _check_reference(reference)
    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    return index


def build_index(reference: np.ndarray, settings: SearchSettings, seed: int = 0) -> faiss.Index:
    """A CPU index of ``settings.backend`` over float32 (N, D) reference rows; ids are row numbers."""
    reference = _check_reference(reference)
    start = time.perf_counter()
    if settings.backend == "exact":
        index = build_flat_index(reference)
    elif settings.backend == "ivf":
        index = _build_ivf(reference, settings, seed)
    else:
        index = faiss.IndexHNSWFlat(reference.shape[1], settings.hnsw_m)
        index.hnsw.efConstruction = settings.ef_construction
        index.hnsw.efSearch = settings.ef_search
        index.add(reference)
    logger.info("built a %s index over %d x %d reference rows in %.1f s",
                index_kind(index), *reference.shape, time.perf_counter() - start)
    return index


def ivf_lists(n: int, nlist: int = 0) -> int:
    """IVF list count: ``nlist``, or when 0 about 4 sqrt(N), keeping enough training points per list."""
    if nlist > n:
        raise InputError(f"search.nlist = {nlist} lists for {n} reference rows; use at most {n}, or 0 to choose")
    return nlist or max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


def _build_ivf(reference: np.ndarray, settings: SearchSettings, seed: int) -> faiss.IndexIVFFlat:
    d = reference.shape[1]
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, ivf_lists(len(reference), settings.nlist))
    index.cp.seed = seed
    index.train(reference)
    index.add(reference)
    index.nprobe = settings.nprobe
    # Rows are read back by id for the exact re-rank: 8 bytes a row instead of a second copy.
    index.make_direct_map()
    return index


def _check_reference(reference: np.ndarray) -> np.ndarray:
    reference = check_matrix(reference, what="reference vectors")
    if len(reference) == 0:
        raise InputError("cannot index an empty reference set; the reference needs at least one row")
    return reference


def index_kind(index: faiss.Index) -> str:
    """``flat``, ``ivf`` or ``hnsw``: the kinds this package builds and searches."""
    index = faiss.downcast_index(index)
    if index.metric_type != faiss.METRIC_L2:
        raise InputError(f"the index uses FAISS metric {index.metric_type}; only Euclidean (L2) indexes are supported")
    for kind, cls in (("flat", faiss.IndexFlat), ("ivf", faiss.IndexIVFFlat), ("hnsw", faiss.IndexHNSWFlat)):
        if isinstance(index, cls):
            return kind
    raise InputError(f"unsupported index {type(index).__name__}; build it with build_index (flat, ivf or hnsw)")


def stored_vectors(index: faiss.Index) -> np.ndarray | None:
    """A zero-copy (N, D) view of the rows a flat or HNSW index stores, or None for IVF.

    The view is valid while the index lives and is not modified.
    """
    kind = index_kind(index)
    if kind == "ivf":
        return None
    flat = faiss.downcast_index(index.storage) if kind == "hnsw" else index
    return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)


def save_index(index: faiss.Index, path: Path) -> None:
    """Write ``index`` to ``path`` through a temporary file, so a crash never leaves half an index."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def load_index(path: Path) -> faiss.Index:
    """Read an index written by ``save_index``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no index file at {path}; build the index first")
    index = faiss.read_index(str(path))
    index_kind(index)
    return index
