"""Step 2b, embedding: every image of a source into a space, chunk by chunk, as float32 (N, D) Zarr.

Blocks are read one ahead and written one behind in background threads while
the current one is embedded, so reading, encoding and writing overlap and peak
memory is a few blocks plus the encoder, whatever N is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from manifpt_core.attribution import resolve_device
from manifpt_core.config import Settings
from manifpt_core.steps.cache import Outcome, require_record, run_cached
from manifpt_core.steps.space import open_space
from manifpt_core.store import (
    Store,
    create_rows,
    iter_blocks,
    open_array,
    prefetch,
    write_behind,
)
from manifpt_core.store.arrays import aligned_block_rows

EMBED_VERSION = "2"


def embed_source(store: Store, settings: Settings, space_name: str, source: str) -> Outcome:
    """Embed ``images/<source>.zarr`` into ``embeddings/<space>/<source>.zarr``."""
    images_record = require_record(store.images(source), f"the images of {source!r} (ingestion)")
    space_record = require_record(store.space(space_name), f"the embedding space {space_name!r}")

    def compute(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
        embedder = open_space(store, space_name, resolve_device(settings.device))
        images = open_array(store.images(source))
        n = images.shape[0]
        dim = embedder.dim(tuple(images.shape[1:]))
        writer = create_rows(tmp, None, (n, dim), np.float32, settings.chunk_rows)
        step = aligned_block_rows(settings.block_rows, settings.chunk_rows)
        blocks = prefetch(np.asarray(block) for _, block in iter_blocks(images, step))
        progress = tqdm(blocks, total=-(-n // step), desc=f"embed {source} in {space_name}", unit="block", leave=False)
        write_behind(writer, (embedder.embed(block) for block in progress))
        return writer.content_hash(), {"n_samples": n, "dim": dim, "space": space_name, "device": embedder.device}

    return run_cached(store.embeddings(space_name, source), "embed", EMBED_VERSION,
                      {"images": images_record["content_hash"], "space": space_record["content_hash"]},
                      {"chunk_rows": settings.chunk_rows}, compute)
