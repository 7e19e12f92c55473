"""The heavy steps on a Dask cluster: throughput of the local path, 1 worker and 2 workers, on the same data.

    .venv/bin/python benchmarks/bench_cluster.py [--n-reference 10000] [--n-model 3000] [--spaces rgb,sl]
                                                 [--workers 1,2] [--scale-only] [--no-scale]

Part 1, one store: Fashion-MNIST reference and real class, plus two model folders made from real test images
(one with additive noise, one with a faint checkerboard), stored as the pipeline stores them; blocks of
``--block-rows`` rows, so each model's step has several tasks. For each space,
the embedding of both models and their artifacts (sharded exact search, one shard per worker) are recomputed
with the local path, then on a LocalCluster of each worker count; per step and mode: rows/s, the ratio to the
local path, and whether the content hash is the local one (it must be). The cluster's start-up is reported
apart, since a running cluster pays it once.

Part 2, a scaled synthetic case at the paper's image size (256x256x3, D = 196,608) that this machine holds:
rgb embedding, exact search (GFLOP/s, as 2 n_q n_ref D) and the derived artifacts' read rate, the figures
docs/scale.md extrapolates from. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from manifpt_core import steps
from manifpt_core.cluster import ClusterSettings, open_cluster
from manifpt_core.config import settings_from_dict
from manifpt_core.search import Searcher, SearchSettings, build_flat_index
from manifpt_core.sources.idx import read_idx
from manifpt_core.steps.pipeline import pipeline_steps
from manifpt_core.store import Store

FASHION = Path("/usr/share/datasets/fashion-mnist")
MODELS = ("noisy", "checker")


def write_models(folder: Path, n: int) -> None:
    """Two 'models' made from real test images: noise, and a faint checkerboard."""
    images = read_idx(FASHION / "t10k-images-idx3-ubyte.gz")[:n].astype(np.float32)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    variants = {"noisy": images + rng.normal(0, 12, images.shape), "checker": images + 10.0 * ((yy + xx) % 2)}
    for name, values in variants.items():
        (folder / name).mkdir(parents=True)
        for i, img in enumerate(np.clip(values, 0, 255).astype(np.uint8)):
            Image.fromarray(img).save(folder / name / f"{i:05d}.png")


def build_store(work: Path, args: argparse.Namespace):
    write_models(work / "models", args.n_model)
    settings = settings_from_dict({
        "profile": "bench", "dataset": "bench", "source": {"kind": "fashion_mnist"}, "zoo": [],
        "models_path": str(work / "models"), "n_reference": args.n_reference, "n_real_class": 1000,
        "n_per_model": args.n_model, "spaces": args.spaces.split(","), "device": "cpu",
        "encoders": {"sl": {"steps": 30}, "ssl": {"steps": 30}}, "baselines": {"methods": []},
        "block_rows": args.block_rows,
    })
    store = Store(work / "store", "bench")
    start = time.perf_counter()
    for label, call in pipeline_steps(store, settings, list(MODELS)):
        if label.split()[0] in ("generator", "ingest", "space", "embed", "index"):
            call()
    print(f"store built in {time.perf_counter() - start:.0f} s: {args.n_reference} references, "
          f"2 models x {args.n_model} images, spaces {settings.spaces}")
    return store, settings


def timed_steps(store: Store, settings, cluster) -> dict[tuple[str, str], tuple[float, list[str]]]:
    """(step, space) -> (seconds, content hashes) of embedding and artifacts of both models, recomputed."""
    out = {}
    for space in settings.spaces:
        for step, path, call in (("embed", store.paths.embeddings, steps.embed_source),
                                 ("artifacts", store.paths.artifacts, steps.materialize_artifacts)):
            for model in MODELS:
                shutil.rmtree(path(space, model), ignore_errors=True)
            start = time.perf_counter()
            hashes = [call(store, settings, space, model, cluster=cluster).content_hash for model in MODELS]
            out[(step, space)] = (time.perf_counter() - start, hashes)
    return out


def part_one(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store, settings = build_store(Path(tmp), args)
        rows = 2 * args.n_model
        results = {"local": timed_steps(store, settings, None)}
        startup = {}
        for n in (int(w) for w in args.workers.split(",")):
            start = time.perf_counter()
            with open_cluster(ClusterSettings(workers=n)) as cluster:
                startup[n] = time.perf_counter() - start
                results[f"{n} worker{'s' * (n > 1)}"] = timed_steps(store, settings, cluster)
        print("\ncluster start-up: " + ", ".join(f"{n} workers {s:.1f} s" for n, s in startup.items()))
        print(f"\n{'step':<10} {'space':<6} {'mode':<10} {'rows/s':>9} {'x local':>8}  same bits")
        for (step, space), (local_s, local_hashes) in results["local"].items():
            for mode, timings in results.items():
                seconds, hashes = timings[(step, space)]
                print(f"{step:<10} {space:<6} {mode:<10} {rows / seconds:9.0f} {local_s / seconds:8.2f}  "
                      f"{hashes == local_hashes}")


def part_two(args: argparse.Namespace) -> None:
    """The paper's image size, at a count this machine holds."""
    from manifpt_core.spaces import get_space

    rng = np.random.default_rng(0)
    n_ref, n_q, shape = args.scale_reference, args.scale_queries, (3, 256, 256)
    d = int(np.prod(shape))
    print(f"\nscaled synthetic case: {n_ref} references and {n_q} queries of 256x256x3 (D = {d})")
    images = rng.integers(0, 256, (n_ref + n_q, *shape), dtype=np.uint8)
    rgb = get_space("rgb")
    start = time.perf_counter()
    vectors = np.concatenate([rgb.embed(images[s : s + 64]) for s in range(0, len(images), 64)])
    embed_s = time.perf_counter() - start
    print(f"  rgb embedding: {len(images) / embed_s:.0f} images/s ({len(images) * d * 4 / embed_s / 1e9:.2f} GB/s "
          "of float32 written to memory)")
    reference, queries = vectors[:n_ref], vectors[n_ref:]
    searcher = Searcher(build_flat_index(reference), SearchSettings(), "cpu")
    searcher.search(queries[:8])
    start = time.perf_counter()
    ids, _ = searcher.search(queries)
    search_s = time.perf_counter() - start
    flops = 2.0 * n_q * n_ref * d
    print(f"  exact search ({searcher.engine}): {n_q / search_s:.1f} queries/s, {flops / search_s / 1e9:.1f} GFLOP/s")
    start = time.perf_counter()
    derived = rgb.embed(images[n_ref:]) - rgb.embed(images[ids[:, 0]])
    derive_s = time.perf_counter() - start
    print(f"  deriving rgb artifacts from uint8 images: {n_q / derive_s:.0f} artifacts/s "
          f"({derived.nbytes / derive_s / 1e9:.2f} GB/s of float32 produced)")
    print(f"  GM-CHQ at these rates on this machine (1.7M queries, 30,000 references): search "
          f"{2.0 * 1.7e6 * 30_000 * d / (flops / search_s) / 3600:.0f} h, rgb embedding "
          f"{1.73e6 / (len(images) / embed_s) / 3600:.1f} h")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-reference", type=int, default=10_000)
    p.add_argument("--n-model", type=int, default=10_000, help="images per model (at most 10,000)")
    p.add_argument("--block-rows", type=int, default=2048, help="rows a block (a task), the same for every mode")
    p.add_argument("--spaces", default="rgb,sl")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--scale-reference", type=int, default=2_000)
    p.add_argument("--scale-queries", type=int, default=256)
    p.add_argument("--scale-only", action="store_true")
    p.add_argument("--no-scale", action="store_true")
    args = p.parse_args()
    if not args.scale_only:
        part_one(args)
    if not args.no_scale:
        part_two(args)


if __name__ == "__main__":
    main()
