"""Step 2b, embedding: every image of a source into a space, chunk by chunk, as float32 (N, D) Zarr.

Blocks are read one ahead and written one behind in background threads while
the current one is embedded, so reading, encoding and writing overlap and peak
memory is a few blocks plus the encoder, whatever N is.

Given a Dask cluster (``manifpt_core.cluster``), the same blocks are embedded by its
workers, each loading the encoder once from the store and writing its rows into
the output being built; the result is the same bits, hashed and committed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from tqdm import tqdm

from manifpt_core.config import Settings
from manifpt_core.spaces import get_space
from manifpt_core.steps.space import open_space
from manifpt_core.store import (
    Outcome,
    Store,
    create_rows,
    iter_blocks,
    prefetch,
    run_cached,
    write_behind,
)
from manifpt_core.store.arrays import aligned_block_rows, hash_rows
from manifpt_core.store.hashing import text_hash
from manifpt_core.store.records import EmbeddingsSummary
from manifpt_core.torch_helpers import resolve_device

if TYPE_CHECKING:
    from manifpt_core.cluster import Cluster

EMBED_VERSION = "2"


def embed_source(store: Store, settings: Settings, space_name: str, source_name: str,
                 cluster: Cluster | None = None) -> Outcome[EmbeddingsSummary]:
    """Embed ``images/<source>.zarr`` into ``embeddings/<space>/<source>.zarr`` (on ``cluster`` when given)."""
    source = store.source(source_name)
    images_hash, space_hash = source.record.content_hash, store.space(space_name).content_hash

    n, shape = source.summary.n_samples, tuple(source.summary.image_shape)
    derived = settings.derives(space_name, n, get_space(space_name).dim(shape))

    def compute(tmp: Path, fp: str) -> tuple[str, EmbeddingsSummary]:
        if derived:  # nothing to compute: a view of the images (manifpt_core.store.derived)
            zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
            return text_hash(f"derived:{images_hash}:{space_hash}"), EmbeddingsSummary(
                n_samples=n, dim=get_space(space_name).dim(shape), space=space_name, device="none", derived=True)
        step = aligned_block_rows(settings.block_rows, settings.chunk_rows)
        if cluster is not None:  # the workers load the encoder; here its output size comes from the space card
            space = store.space(space_name).summary
            dim = space.feature_dim if space.feature_dim is not None else get_space(space_name).dim(shape)
            writer = create_rows(tmp, None, (n, dim), np.float32, settings.chunk_rows)
            from manifpt_core.cluster.blockwise import embed_blocks
            from manifpt_core.cluster.tasks import EmbedJob

            job = EmbedJob(str(store.root), store.dataset, space_name, space_hash, source.name, settings.device,
                           str(tmp))
            embed_blocks(cluster, job, n, step)
            return hash_rows(writer.array, step), EmbeddingsSummary(n_samples=n, dim=dim, space=space_name,
                                                                    device=f"{settings.device} on dask")
        embedder = open_space(store, space_name, resolve_device(settings.device))
        images = source.images()
        dim = embedder.dim(shape)
        writer = create_rows(tmp, None, (n, dim), np.float32, settings.chunk_rows)
        blocks = prefetch(np.asarray(block) for _, block in iter_blocks(images, step))
        progress = tqdm(blocks, total=-(-n // step), desc=f"embed {source.name} in {space_name}", unit="block", leave=False)
        write_behind(writer, (embedder.embed(block) for block in progress))
        return writer.content_hash(), EmbeddingsSummary(n_samples=n, dim=dim, space=space_name,
                                                        device=embedder.device)

    return run_cached(store.paths.embeddings(space_name, source.name), "embed", EMBED_VERSION,
                      {"images": images_hash, "space": space_hash},
                      {"chunk_rows": settings.chunk_rows, **({"derived": True} if derived else {})}, compute,
                      EmbeddingsSummary)
