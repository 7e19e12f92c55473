"""Observing a dataset's sources: the real source and every configured model, by content hash.

The observation assets record these hashes as data versions; ``manifpt observe`` prints them. Both read
through the store's per-file hash cache (:mod:`manifpt_core.store.file_hashes`), so an unchanged file is not
read again; a deep observation reads every file and rewrites the cache.
"""

from __future__ import annotations

from manifpt_core.config import Settings
from manifpt_core.names import REAL
from manifpt_core.steps.generators import configured_models, observe_model_source
from manifpt_core.steps.ingest import observe_real_source
from manifpt_core.store import Store
from manifpt_core.store.file_hashes import FileHashCache, Observation


def observe_sources(store: Store, settings: Settings, deep: bool = False) -> dict[str, Observation]:
    """The observation of the real source and of each configured model: ``real`` first, then the models by name.

    ``deep``: ignore the cached hashes, read every file, and rewrite the cache from what was read; for bytes
    that changed without changing the file's size or times (a disk error, a filesystem that keeps no change
    time, a file server whose clock is behind).
    """
    cache = FileHashCache.in_store(store.paths.root, deep)
    found = {REAL: observe_real_source(settings, cache)}
    found |= {model: observe_model_source(settings, model, cache) for model in configured_models(settings)}
    return found
