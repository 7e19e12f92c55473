"""Speed of attributing new images with the query engine, against the pipeline's own path on the same images.

    .venv/bin/python benchmarks/bench_query.py [--home DIR] [--profile tiny] [--config FILE] [--dataset D]
                                               [--n 512] [--repeat 30] [--device cpu] [--demo-shape]

On one materialized dataset (built first with run_pipeline when the home's store lacks it), measured in one run
on the same N stored images (the test split of every class, taken in turn; other splits top it up when the
test split holds fewer than N):

1. pipeline throughput: the step functions' own embed + search + artifacts + every method's per-seed inference,
   in blocks of ``block_rows`` as the pipeline runs them (images already read from the store; encoders, indexes
   and networks loaded before timing);
2. query batch throughput: the same images as PNG files in a temporary folder, ``attribute_images(engine,
   [folder])`` with a warm engine (PNG decoding and checks included), and its ratio to the pipeline's
   (target >= 0.8); the answers are checked against the pipeline's predictions;
3. one image with a warm engine: median and p90 latency over ``--repeat`` calls (target < 1 s on 2 cores);
4. one image cold: a fresh ``manifpt attribute IMAGE --json`` process (median of 3), and the engine's load time
   in this process.

``--demo-shape`` writes (under the home) a config over the demo profile with one dataset, Fashion-MNIST
clothing, at the demo's sizes (10000 reference images, 1000 samples a model, 8 zoo models, 4 spaces, nearest
and knn artifacts, 3 seeds) but with training cut short so that it builds in minutes: query cost depends on
the sizes and networks, not on how well they were trained. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from manifpt_core.artifacts import artifacts_of_block
from manifpt_core.attribution import predict_proba
from manifpt_core.config import PROFILES, Settings, load_settings
from manifpt_core.errors import ManifptError
from manifpt_core.names import Method
from manifpt_core.query import QueryEngine, attribute_images, default_methods
from manifpt_core.spaces import get_space
from manifpt_core.steps import run_pipeline
from manifpt_core.steps.attribute import seed_networks
from manifpt_core.steps.generators import configured_models
from manifpt_core.steps.index import open_searcher
from manifpt_core.steps.space import open_space
from manifpt_core.store import Home, Store
from manifpt_core.store.arrays import aligned_block_rows
from manifpt_core.store.records import ArtifactsSummary
from manifpt_core.torch_helpers import resolve_device

logger = logging.getLogger("bench_query")

ROUNDS = 3  # timed passes of the pipeline and of the query batch; the median is reported
COLD_RUNS = 3
WARMUP_ROWS = 8  # images of the untimed first pass (torch's and FAISS's first-call costs)
QUERY_TARGET, WARM_TARGET_S = 0.8, 1.0

# --demo-shape: the demo profile's sizes, one dataset, training cut short.
DEMO_SHAPE_CONFIG = "bench_query_demo_shape.toml"
DEMO_SHAPE_DATASET = "fmnist_clothing"
DEMO_SHAPE_CLASSES = [0, 1, 2, 3, 4, 6]
DEMO_SHAPE_ZOO_STEPS = 30
DEMO_SHAPE_ATTRIBUTOR_EPOCHS = 1
DEMO_SHAPE_ENCODER_STEPS = 20


def write_demo_shape_config(path: Path) -> str:
    """A TOML config over the demo profile (see the module docstring); returns a line saying what it shortens."""
    lines = [f'dataset = "{DEMO_SHAPE_DATASET}"', "",
             "[source]", 'kind = "fashion_mnist"', f"classes = {DEMO_SHAPE_CLASSES}", "",
             "[attributor]", f"epochs = {DEMO_SHAPE_ATTRIBUTOR_EPOCHS}", "",
             "[encoders.sl]", f"steps = {DEMO_SHAPE_ENCODER_STEPS}", "",
             "[encoders.ssl]", f"steps = {DEMO_SHAPE_ENCODER_STEPS}", "",
             "[baselines]", "methods = []", ""]
    for card in PROFILES["demo"]["zoo"]:  # a [[zoo]] list replaces the profile's: every demo model, retold
        lines += ["[[zoo]]", f'name = "{card["name"]}"', f'family = "{card["family"]}"', f"seed = {card['seed']}",
                  f"train = {{steps = {DEMO_SHAPE_ZOO_STEPS}}}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by benchmarks/bench_query.py --demo-shape: the demo's sizes, training cut short.\n"
                    + "\n".join(lines))
    return (f"DEMO-SHAPED store: demo sizes, training shortened (zoo {DEMO_SHAPE_ZOO_STEPS} steps a model, "
            f"attributor {DEMO_SHAPE_ATTRIBUTOR_EPOCHS} epoch, encoders {DEMO_SHAPE_ENCODER_STEPS} steps, no "
            "baselines): the query cost is the demo's, the accuracy is not")


def missing_parts(store: Store, settings: Settings) -> list[str]:
    """What a query needs that the store does not hold: real images, spaces, indexes, attributors."""
    missing = []
    checks = [("real images", lambda: store.real.summary)]
    checks += [(f"space {s}", lambda s=s: store.space(s)) for s in settings.spaces]
    checks += [(f"index {s}", lambda s=s: store.index(s)) for s in settings.spaces]
    checks += [(f"attributor {m}", lambda m=m: store.attributor(m)) for m in default_methods(settings)]
    for label, check in checks:
        try:
            check()
        except ManifptError:
            missing.append(label)
    return missing


def ensure_store(store: Store, settings: Settings) -> float | None:
    """Build the dataset with run_pipeline when the store lacks a part of it; the seconds it took, or None."""
    missing = missing_parts(store, settings)
    if not missing:
        return None
    logger.info("the store lacks %s: building dataset %s with run_pipeline (this can take a while)",
                ", ".join(missing[:4]) + (" …" if len(missing) > 4 else ""), settings.dataset)
    start = time.perf_counter()
    run_pipeline(store, settings, configured_models(settings))
    seconds = time.perf_counter() - start
    still = missing_parts(store, settings)
    if still:
        raise SystemExit(f"run_pipeline finished but the store still lacks {', '.join(still)}")
    return seconds


def pick_images(store: Store, classes: list[str], n: int) -> tuple[np.ndarray, list[str], int]:
    """``n`` stored images, uint8 (n, C, H, W), one class after another (test split first), their class names,
    and how many are test images."""
    rng = np.random.default_rng(0)
    test, other = {}, {}
    for name in classes:
        source = store.source(name)
        rows = source.query_rows()
        is_test = source.splits(rows) == "test"
        test[name], other[name] = rng.permutation(rows[is_test]), rng.permutation(rows[~is_test])
    picked: dict[str, list[int]] = {name: [] for name in classes}
    n_test = 0
    for pools in (test, other):
        cursor = dict.fromkeys(classes, 0)
        while sum(map(len, picked.values())) < n and any(cursor[c] < len(pools[c]) for c in classes):
            for name in classes:
                if cursor[name] < len(pools[name]) and sum(map(len, picked.values())) < n:
                    picked[name].append(int(pools[name][cursor[name]]))
                    cursor[name] += 1
        if pools is test:
            n_test = sum(map(len, picked.values()))
    images, labels = [], []
    for name in classes:
        if picked[name]:
            images.append(store.source(name).images().get_orthogonal_selection((np.sort(picked[name]),)))
            labels += [name] * len(picked[name])
    return np.concatenate(images).astype(np.uint8, copy=False), labels, n_test


class PipelinePath:
    """The pipeline's own step functions, loaded once: open_space, open_searcher + artifacts_of_block, and
    predict_proba on each seed network of every method."""

    def __init__(self, store: Store, settings: Settings, device: str) -> None:
        self.settings, self.device = settings, device
        self.shape = tuple(store.real.summary.shape)
        self.spaces = {s: (open_space(store, s, device), open_searcher(store, settings, s)) for s in settings.spaces}
        self.methods = {m: seed_networks(store, m)[1] for m in default_methods(settings)}
        self.step = aligned_block_rows(settings.block_rows, settings.chunk_rows)

    def _input(self, method: Method, block: np.ndarray, arrays: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
        """A method's input as the attributor step reads it (steps.attribute.source_inputs)."""
        if method.is_control:
            return block.astype(np.float32) / np.float32(255.0)
        x = arrays[method.space][ArtifactsSummary.ARRAYS[method.kind]]
        return x.reshape((len(x), *self.shape)) if get_space(method.space).image_shaped else x

    def run(self, images: np.ndarray, progress: bool = False) -> dict[Method, np.ndarray]:
        """Every method's probabilities (seeds, n, classes) of ``images``, block by block."""
        a = self.settings.artifacts
        out: dict[Method, list[np.ndarray]] = {m: [] for m in self.methods}
        starts = range(0, len(images), self.step)
        for s in tqdm(starts, desc="pipeline blocks", unit="block", leave=False, disable=not progress):
            block = images[s:s + self.step]
            arrays = {}
            for space, (embedder, searcher) in self.spaces.items():
                vectors = np.ascontiguousarray(embedder.embed(block), dtype=np.float32)
                arrays[space] = artifacts_of_block(searcher, vectors, a.kinds, a.knn_k, a.knn_reg)
            for method, networks in self.methods.items():
                x = self._input(method, block, arrays)
                out[method].append(np.stack([predict_proba(net, x, device=self.device) for _, net in networks]))
        return {m: np.concatenate(parts, axis=1) for m, parts in out.items()}


def write_pngs(images: np.ndarray, labels: list[str], folder: Path) -> list[Path]:
    """Each image as ``<i>_<class>.png`` (grey or RGB, lossless)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (pixels, label) in enumerate(zip(images, labels)):
        path = folder / f"{i:05d}_{label}.png"
        Image.fromarray(np.ascontiguousarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
                        ).save(path, format="PNG")
        paths.append(path)
    return paths


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def agreement(answers, paths: list[Path], probabilities: dict[Method, np.ndarray], classes: dict[Method, list[str]]
              ) -> tuple[float, float]:
    """The share of (image, method) answers whose prediction is the pipeline's, and the largest difference of
    the predicted class's mean probability."""
    index = {p.name: i for i, p in enumerate(paths)}
    methods = {str(m): m for m in probabilities}
    same, total, worst = 0, 0, 0.0
    for answer in answers:
        if answer.error:
            continue
        i = index[Path(answer.image).name]
        for m in answer.methods:
            mean = probabilities[methods[m.method]][:, i].mean(axis=0)
            k = int(np.argmax(mean))
            same += classes[methods[m.method]][k] == m.predicted
            worst = max(worst, abs(float(mean[k]) - m.probability))
            total += 1
    return same / max(total, 1), worst


def cold_runs(png: Path, args: argparse.Namespace, profile: str, config: str | None, dataset: str) -> list[float]:
    """Wall seconds of fresh ``manifpt attribute`` processes on one image."""
    manifpt = Path(sys.executable).with_name("manifpt")
    cmd = [str(manifpt), "attribute", str(png), "--home", str(args.home_path), "--profile", profile,
           "--dataset", dataset, "--device", args.device, "--json"] + (["--config", config] if config else [])
    seconds = []
    for _ in tqdm(range(COLD_RUNS), desc="cold processes", unit="run", leave=False):
        start = time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}")
        json.loads(proc.stdout)  # the document must parse
    return seconds


def store_lines(store: Store, settings: Settings, engine: QueryEngine, device: str) -> list[str]:
    """The store's shape: dataset, reference images, sources, spaces, methods, seeds, threads, CPUs."""
    real = store.real
    sources = [f"{name} ({store.source(name).summary.n_samples})" for name in ["real", *sorted(store.models())]]
    spaces = [f"{s} ({store.index(s).summary.dim}-d)" for s in settings.spaces]
    seeds = sorted({seed for m in engine.methods for seed, _ in m.networks})
    n_networks = sum(len(m.networks) for m in engine.methods)
    return [(f"dataset {store.dataset} ({settings.profile} profile), images {'x'.join(map(str, engine.shape))}, "
             f"{real.n_reference} reference images"),
            f"sources: {', '.join(sources)}",
            f"spaces: {', '.join(spaces)}; artifact kinds {', '.join(settings.artifacts.kinds)}",
            (f"methods: {', '.join(engine.method_names)} ({len(engine.methods)} methods x seeds {seeds} = "
             f"{n_networks} networks)"),
            (f"device {device}, torch threads {torch.get_num_threads()}, CPU count {os.cpu_count()}, "
             f"block_rows {settings.block_rows}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None,
                        help="a materialized home (its store is built first when it lacks the dataset); default: "
                             "a fresh temporary folder, removed after")
    parser.add_argument("--profile", default=None, help="settings profile (default tiny; demo with --demo-shape)")
    parser.add_argument("--config", default=None, help="TOML file overriding the profile")
    parser.add_argument("--dataset", default=None, help="dataset to query (default the first configured)")
    parser.add_argument("--n", type=int, default=512, help="stored images of the throughput parts")
    parser.add_argument("--repeat", type=int, default=30, help="calls of the warm single-image part")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--demo-shape", action="store_true",
                        help="write and use a config of the demo's sizes with training cut short (see above)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.n < 1 or args.repeat < 1:
        parser.error("--n and --repeat must be at least 1")
    if args.demo_shape and args.config:
        parser.error("--demo-shape writes its own config: drop --config")
    if args.demo_shape and args.profile not in (None, "demo"):
        parser.error("--demo-shape is over the demo profile: drop --profile or give --profile demo")
    profile = args.profile or ("demo" if args.demo_shape else "tiny")
    args.home_path = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="manifpt-bench-query-"))
    try:
        run(args, profile)
    finally:
        if not args.home:
            shutil.rmtree(args.home_path, ignore_errors=True)


def run(args: argparse.Namespace, profile: str) -> None:
    home = Home(args.home_path)
    note, config = None, args.config
    if args.demo_shape:
        path = home.path / DEMO_SHAPE_CONFIG
        note = write_demo_shape_config(path)
        config = str(path)
        logger.info("demo-shaped config written to %s", path)
    config = str(Path(config).absolute()) if config else None
    try:
        settings = dataclasses.replace(load_settings(profile, config, args.dataset), device=args.device)
        device = resolve_device(args.device)
    except ManifptError as err:
        raise SystemExit(f"bench_query: {err}") from None
    store = Store(home.store_root, settings.dataset)
    build_s = ensure_store(store, settings)

    logger.info("loading the pipeline's encoders, indexes and networks")
    pipeline = PipelinePath(store, settings, device)
    classes = {m: seed_networks(store, m)[0].classes for m in pipeline.methods}
    images, labels, n_test = pick_images(store, next(iter(classes.values())), args.n)
    n = len(images)
    logger.info("%d images (%d from the test split) of %d classes", n, n_test, len(set(labels)))

    engine_s, engine = timed(QueryEngine, store, settings, None, device)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="manifpt-bench-query-") as tmp:
        folder, single = Path(tmp) / "images", Path(tmp) / "one"
        paths = write_pngs(images, labels, folder)
        one = write_pngs(images[:1], labels[:1], single)[0]
        pipeline.run(images[:WARMUP_ROWS])
        attribute_images(engine, paths[:WARMUP_ROWS])
        # Interleaved, so that both see the same load from whatever else runs on the machine.
        pipe_times, query_times, probabilities, answers = [], [], {}, []
        for _ in tqdm(range(ROUNDS), desc="pipeline and query passes", unit="pass", leave=False):
            seconds, probabilities = timed(pipeline.run, images, True)
            pipe_times.append(seconds)
            seconds, answers = timed(attribute_images, engine, [folder])
            query_times.append(seconds)
        same, worst = agreement(answers, paths, probabilities, classes)
        n_failed = sum(1 for a in answers if a.error)

        attribute_images(engine, [one])
        warm = [timed(attribute_images, engine, [one])[0]
                for _ in tqdm(range(args.repeat), desc="single image, warm", unit="call", leave=False)]
        cold = cold_runs(one, args, profile, config, settings.dataset)
    load_after = os.getloadavg()[0]

    pipe_rate, query_rate = n / statistics.median(pipe_times), len(answers) / statistics.median(query_times)
    ratios = [len(answers) / q / (n / p) for p, q in zip(pipe_times, query_times)]  # per interleaved pair
    ratio = statistics.median(ratios)
    warm_median, warm_p90 = statistics.median(warm), float(np.percentile(warm, 90))
    width = 66
    lines = ["", "query benchmark"]
    if note:
        lines.append(note)
    lines += store_lines(store, settings, engine, device)
    lines.append(f"store: built by run_pipeline in {build_s:.1f} s" if build_s is not None
                 else "store: found complete, not rebuilt")
    origin = "all test" if n_test == n else f"{n_test} test, {n - n_test} from the other splits"
    lines.append(f"images: {n} stored images ({origin}), "
                 f"{len(set(labels))} classes; throughputs are medians of {ROUNDS} interleaved passes after a warm-up")
    # This process adds up to its torch threads to the load while it runs; before the timed parts it was idle.
    busy = load_before >= (os.cpu_count() or 1)
    lines.append(f"load average (1 min) {load_before:.2f} before the timed parts (this run's own included after: "
                 f"{load_after:.2f})" + ("; other processes were busy: the timings are noisy" if busy else ""))
    lines.append("")
    lines.append(f"{'measure':{width}s} {'value':>12s}  target")
    rows = [
        (f"pipeline: embed+search+artifacts+{sum(map(len, pipeline.methods.values()))} networks, {n} images",
         f"{pipe_rate:8.1f} im/s", ""),
        (f"query batch: attribute_images(engine, [folder]), {n} PNGs", f"{query_rate:8.1f} im/s", ""),
        ("query / pipeline (median of the interleaved passes' ratios)", f"{ratio:8.3f}",
         f">= {QUERY_TARGET} (passes {', '.join(f'{r:.2f}' for r in ratios)})"),
        ("query answers equal to the pipeline's predictions", f"{100 * same:7.2f} %",
         f"max |dp| {worst:.2e}, {n_failed} refused"),
        (f"single image, warm engine: median of {args.repeat}", f"{warm_median:8.3f} s", f"< {WARM_TARGET_S} s"),
        (f"single image, warm engine: p90 of {args.repeat}", f"{warm_p90:8.3f} s", f"< {WARM_TARGET_S} s"),
        (f"single image, cold: fresh `manifpt attribute --json`, median of {COLD_RUNS}",
         f"{statistics.median(cold):8.2f} s", "runs " + ", ".join(f"{c:.2f}" for c in cold)),
        ("engine load in this process: QueryEngine(store, settings)", f"{engine_s:8.2f} s", ""),
    ]
    lines += [f"{label:{width}s} {value:>12s}  {target}".rstrip() for label, value, target in rows]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
