"""Speed and recall of nearest-neighbour search, as ratios to GEMM, scikit-learn and a numpy loop, and its peak memory.

    .venv/bin/python benchmarks/bench_search.py [--device cpu|cuda] [--quick] [--exact-only] [--repeats N]

On seeded random Gaussian data (the hardest case for approximate indexes), per size:
exact search's GFLOP/s (2 n_q n_ref d flops) against the float32 GEMM of the same
shapes (one query block @ reference.T; numpy on the CPU, torch on CUDA), and its
speed-up over scikit-learn's brute-force NearestNeighbors and over a per-query numpy
loop; every exact engine, and the torch engine with reduced-precision candidates
(``search.precision``), is checked to return the default engine's neighbours. GEMM
and the engines are timed in turn, ``--repeats`` times, each from idle thread pools,
and each keeps its best time: on a machine shared with other work that ratio is the
least disturbed (the load average is printed before and after). Then
IVF and HNSW: build time, speed-up over exact search, recall@1. Last, the peak RSS
of a child process streaming queries from a Zarr array through exact search, for
two query counts: streaming keeps them equal. Every ratio comes from this one run,
which closes with the default engine's ratio to GEMM per size; nothing is asserted.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from manifpt_core.search import (
    Searcher,
    SearchSettings,
    build_flat_index,
    build_index,
    recall_at_1,
)
from manifpt_core.search.engines import faiss_gpu_available

# (name, d, n_ref, n_q): a wide feature space, the demo's pixel size, and the learned spaces' d = 128 at the
# demo's reference size and at 60,000 rows.
SIZES = [("d2048", 2048, 20_000, 8_192), ("demo-784", 784, 10_000, 9_000), ("demo-128", 128, 10_000, 9_000),
         ("d128-60k", 128, 60_000, 8_192)]
QUICK_SIZES = [("quick-512", 512, 4_000, 2_000), ("quick-64", 64, 3_000, 1_000)]
# Reduced-precision candidates timed per device: fp16 matrix products are slow on CPUs (torch has no fast kernel).
PRECISIONS = {"cpu": ("bf16",), "cuda": ("fp16", "bf16")}
# Both counts span several query blocks: the first two blocks read from Zarr also set up its decoding buffers.
RSS_COUNTS, QUICK_RSS_COUNTS = (10_000, 40_000), (1_000, 4_000)
LOOP_QUERIES = 50  # the per-query numpy loop is timed on this many queries and scaled to all
# Idle seconds before each timing. The thread pools of numpy's OpenBLAS, FAISS's OpenMP and torch keep spinning
# for a while after a call (OpenBLAS up to about 0.1 s): without the pause, whatever runs right after another
# library shares the cores with its spinning threads. At d = 128, where a search takes 0.3 s, that moved the
# FAISS / GEMM ratio between 0.52 and 0.70 with the order of the calls alone.
SETTLE_S = 0.25


def random_data(d: int, n_ref: int, n_q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded standard-normal reference rows and queries."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_ref, d), dtype=np.float32), rng.standard_normal((n_q, d), dtype=np.float32)


def timed(device: str, fn, *args):
    """``(seconds, result)`` of ``fn(*args)`` started from idle threads, waiting for the GPU when there is one."""
    if device == "cuda":
        torch.cuda.synchronize()
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    out = fn(*args)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def gemm_run(reference: np.ndarray, queries: np.ndarray, block: int, device: str):
    """A warmed-up function doing the float32 GEMM of every query block @ reference.T into one reused output.

    numpy on the CPU, torch on CUDA; reusing the output measures the product itself, not the page faults of
    a fresh (block, n_ref) array each time.
    """
    if device == "cpu":
        out = np.empty((block, len(reference)), dtype=np.float32)
        ref_t = reference.T

        def run():
            for s in range(0, len(queries), block):
                q = queries[s:s + block]
                np.matmul(q, ref_t, out=out[:len(q)])

        run()  # warm-up: the output's pages
        return run
    ref = torch.from_numpy(reference).to(device)
    q = torch.from_numpy(queries).to(device)
    out = torch.empty((block, len(ref)), device=device)

    def run_cuda():
        for s in range(0, len(q), block):
            qb = q[s:s + block]
            torch.matmul(qb, ref.T, out=out[:len(qb)])

    run_cuda()  # warm-up: cuBLAS handles and kernels
    return run_cuda


def sklearn_seconds(reference: np.ndarray, queries: np.ndarray) -> float | None:
    """scikit-learn's brute-force 1-NN on all queries; None when scikit-learn is not installed."""
    try:
        from sklearn.neighbors import NearestNeighbors
    except ImportError:
        return None
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(reference)
    return timed("cpu", nn.kneighbors, queries)[0]


def loop_seconds(reference: np.ndarray, queries: np.ndarray) -> float:
    """A per-query numpy loop, timed on the first ``LOOP_QUERIES`` queries and scaled to all of them."""
    sub = queries[:LOOP_QUERIES]
    seconds = timed("cpu", lambda: [np.argmin(np.einsum("nd,nd->n", reference - q, reference - q)) for q in sub])[0]
    return seconds * len(queries) / len(sub)


def exact_engines(device: str) -> list[tuple[str, SearchSettings]]:
    """(engine, settings) of every exact search that can run on ``device`` here, reduced precisions last."""
    base = ["faiss-cpu", "torch-cpu"] if device == "cpu" else \
        (["faiss-gpu", "torch-cuda"] if faiss_gpu_available() else ["torch-cuda"])
    return [(engine, SearchSettings()) for engine in base] + \
        [(f"torch-{device}", SearchSettings(precision=p)) for p in PRECISIONS[device]]


def exact_rows(name: str, reference: np.ndarray, queries: np.ndarray, device: str, repeats: int):
    """Table rows per exact engine, the default engine's ratio to GEMM, and its ``(seconds, (ids, dist))``."""
    settings = SearchSettings()
    index = build_flat_index(reference)
    flops = 2.0 * len(queries) * len(reference) * reference.shape[1]
    gemm = gemm_run(reference, queries, settings.query_block, device)
    sk, loop = sklearn_seconds(reference, queries), loop_seconds(reference, queries)
    searchers = [Searcher(index, engine_settings, device, engine=engine)
                 for engine, engine_settings in exact_engines(device)]
    default = Searcher(index, settings, device).engine
    for searcher in searchers:
        searcher.search(queries[:64])  # warm-up
    gemm_s, best = float("inf"), [(float("inf"), None)] * len(searchers)
    for _ in range(repeats):  # in turn, so that a burst of other work on the machine hits all of them alike
        gemm_s = min(gemm_s, timed(device, gemm)[0])
        best = [min(b, timed(device, s.search, queries), key=lambda t: t[0]) for b, s in zip(best, searchers)]
    gemm_gflops = flops / gemm_s / 1e9
    truth = best[[s.engine for s in searchers].index(default)]
    rows = []
    for searcher, (seconds, found) in zip(searchers, best):
        ours = flops / seconds / 1e9
        same = np.array_equal(found[0], truth[1][0]) and np.array_equal(found[1], truth[1][1])
        engine = searcher.engine + ("*" if searcher.engine == default else "")
        rows.append(f"{name:10s} {engine:16s} {seconds:8.3f} {ours:8.1f} {gemm_gflops:8.1f} {ours / gemm_gflops:7.2f} "
                    f"{_ratio(sk, seconds):>10s} {_ratio(loop, seconds):>10s} {'yes' if same else 'NO':>5s}")
    return rows, gemm_s / truth[0], truth


def _ratio(baseline: float | None, ours: float) -> str:
    return "n/a" if baseline is None else f"{baseline / ours:.1f}x"


def approximate_rows(name: str, reference: np.ndarray, queries: np.ndarray, device: str, exact) -> list[str]:
    """IVF and HNSW with default settings: build time, speed-up over ``exact`` (seconds, answers), recall@1."""
    (exact_s, truth), rows = exact, []
    for settings in (SearchSettings(backend="ivf"), SearchSettings(backend="hnsw")):
        build_s, index = timed("cpu", build_index, reference, settings)
        searcher = Searcher(index, settings, device)
        seconds, found = timed(device, searcher.search, queries)
        recall = recall_at_1(found[0], found[1], truth[0], truth[1])
        rows.append(f"{name:10s} {settings.backend:5s} {searcher.engine:10s} {build_s:8.1f} {seconds:8.3f} "
                    f"{exact_s / seconds:9.3g}x {recall:9.3f}")
    return rows


def streamed_reference(d: int, n_ref: int, rows: int = 4096) -> faiss.IndexFlatL2:
    """A flat index over seeded random rows, added a block at a time so that only the index is held."""
    index, rng = faiss.IndexFlatL2(d), np.random.default_rng(1)
    for start in range(0, n_ref, rows):
        index.add(rng.standard_normal((min(rows, n_ref - start), d), dtype=np.float32))
    return index


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB). Linux's VmHWM starts afresh at exec; ru_maxrss does not
    (a child started by fork + exec inherits its parent's high-water mark), so VmHWM is read where it exists."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(args: argparse.Namespace) -> None:
    """Child process: stream the first ``--rss-queries`` rows of a Zarr array through exact search; print peak RSS."""
    import zarr

    searcher = Searcher(streamed_reference(args.rss_dim, args.rss_refs), SearchSettings(), args.device)
    before = peak_rss_mib()
    array = zarr.open_array(store=args.rss_zarr, mode="r")
    n, step = args.rss_queries, searcher.settings.query_block
    for _ in searcher.stream(array[s:min(s + step, n)] for s in range(0, n, step)):
        pass
    print(json.dumps({"before": before, "peak": peak_rss_mib()}))


def rss_rows(d: int, n_ref: int, counts: tuple[int, ...], device: str) -> list[str]:
    """Peak RSS of one child process per query count, all reading one Zarr array chunked along rows."""
    try:
        import zarr
    except ImportError:
        return ["zarr is not installed: peak-memory part skipped (pip install zarr to run it)"]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "queries.zarr")
        chunk = SearchSettings().query_block
        array = zarr.open_array(store=path, mode="w", shape=(max(counts), d), chunks=(chunk, d), dtype="float32")
        rng = np.random.default_rng(2)
        for start in range(0, max(counts), chunk):
            array[start:start + chunk] = rng.standard_normal((min(chunk, max(counts) - start), d), dtype=np.float32)
        runs = [_child_rss(path, n, d, n_ref, device) for n in counts]
    rows = [(f"d={d}, n_ref={n_ref} (reference {n_ref * d * 4 / 2**20:.0f} MiB), queries in Zarr chunks of {chunk} "
             f"rows ({max(counts) * d * 4 / 2**20:.0f} MiB for {max(counts)}); RSS in MiB")]
    rows += [f"  n_q={n:>7d}: peak {run['peak']:8.0f}, of which {run['peak'] - run['before']:6.0f} while streaming"
             for n, run in zip(counts, runs)]
    ratio = runs[-1]["peak"] / runs[0]["peak"]
    rows.append(f"  peak ratio {counts[-1]} / {counts[0]} queries: {ratio:.3f} (target: at most 1.10)")
    return rows


def _child_rss(path: str, n: int, d: int, n_ref: int, device: str) -> dict[str, float]:
    """``{"before", "peak"}``: the child's peak RSS (MiB) before streaming queries and at its end."""
    cmd = [sys.executable, __file__, "--device", device, "--rss-zarr", path, "--rss-queries", str(n),
           "--rss-dim", str(d), "--rss-refs", str(n_ref)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the script")
    parser.add_argument("--exact-only", action="store_true", help="only the exact engines against GEMM")
    parser.add_argument("--repeats", type=int, default=3, help="timings per engine and size; the best one counts")
    for flag in ("--rss-zarr", "--rss-queries", "--rss-dim", "--rss-refs"):  # set by the parent for its children
        parser.add_argument(flag, type=str if flag == "--rss-zarr" else int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_zarr:
        return rss_child(args)
    sizes, counts = (QUICK_SIZES, QUICK_RSS_COUNTS) if args.quick else (SIZES, RSS_COUNTS)
    threads = torch.get_num_threads() if args.device == "cpu" else torch.cuda.get_device_name()
    print(f"device {args.device} ({threads}{' threads' if args.device == 'cpu' else ''}); random Gaussian data; "
          f"* marks the engine Searcher picks by default; load average {_load()}")
    print(f"exact search, k=1, best of {args.repeats} timed in turn: GFLOP/s = 2 n_q n_ref d / s; GEMM = float32 "
          f"query block @ reference.T ({'numpy' if args.device == 'cpu' else 'torch'}); numpy loop timed on "
          f"{LOOP_QUERIES} queries and scaled; same = the default engine's ids and distances")
    print(f"{'size':10s} {'engine':16s} {'seconds':>8s} {'GFLOP/s':>8s} {'GEMM':>8s} {'vs GEMM':>7s} "
          f"{'vs sklearn':>10s} {'vs loop':>10s} {'same':>5s}")
    approx, ratios = [], []
    for name, d, n_ref, n_q in sizes:
        reference, queries = random_data(d, n_ref, n_q)
        rows, ratio, exact = exact_rows(name, reference, queries, args.device, args.repeats)
        ratios.append(f"d={d} n_ref={n_ref}: {ratio:.2f}")
        print("\n".join(rows), flush=True)
        if not args.exact_only:
            approx += approximate_rows(name, reference, queries, args.device, exact)
    print(f"\ndefault exact engine / GEMM per size: {'; '.join(ratios)} (load average {_load()})")
    if args.exact_only:
        return
    print("\napproximate search (default settings), k=1; speed-up over the default exact engine")
    print(f"{'size':10s} {'kind':5s} {'engine':10s} {'build s':>8s} {'search s':>8s} {'speed-up':>10s} "
          f"{'recall@1':>9s}")
    print("\n".join(approx))
    name, d, n_ref, _ = sizes[0]
    print(f"\npeak RSS of exact search streaming queries from Zarr ({name}):")
    print("\n".join(rss_rows(d, n_ref, counts, args.device)))


def _load() -> str:
    """The 1-minute load average: above the core count, other work shared the machine with these timings."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores" if hasattr(os, "getloadavg") else "n/a"


if __name__ == "__main__":
    main()
