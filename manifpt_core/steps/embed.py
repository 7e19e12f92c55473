"""Step 2, embedding: every image of a source into a space, chunk by chunk, as float32 (N, D) Zarr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from manifpt_core.config import Settings
from manifpt_core.spaces import get_space
from manifpt_core.steps.cache import Outcome, require_record, run_cached
from manifpt_core.store import Store, create_rows, iter_blocks, open_array

EMBED_VERSION = "1"


def embed_source(store: Store, settings: Settings, space_name: str, source: str) -> Outcome:
    """Embed ``images/<source>.zarr`` into ``embeddings/<space>/<source>.zarr``; memory is one block."""
    space = get_space(space_name)
    images_record = require_record(store.images(source), f"the images of {source!r} (ingestion)")

    def compute(tmp: Path, fp: str) -> tuple[str, dict[str, Any]]:
        images = open_array(store.images(source))
        n = images.shape[0]
        dim = space.dim(tuple(images.shape[1:]))
        writer = create_rows(tmp, None, (n, dim), np.float32, settings.chunk_rows)
        blocks = iter_blocks(images, settings.block_rows)
        for _, block in tqdm(blocks, total=-(-n // settings.block_rows), desc=f"embed {source} in {space_name}",
                             unit="block", leave=False):
            writer.write(space.embed(np.asarray(block)))
        return writer.content_hash(), {"n_samples": n, "dim": dim, "space": space.settings()}

    return run_cached(store.embeddings(space_name, source), "embed", EMBED_VERSION,
                      {"images": images_record["content_hash"]},
                      {"space": space.settings(), "chunk_rows": settings.chunk_rows}, compute)
