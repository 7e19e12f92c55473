"""Exact search on a CUDA GPU: FAISS GPU flat, torch blocked fp32, and fp16/bf16 candidates with exact re-rank.

    .venv/bin/python benchmarks/bench_search_gpu.py [--quick] [--repeats N] [--query-block N]

On the same seeded Gaussian data per size, each engine searches every query for
its k = 1 nearest reference rows through ``Searcher`` (queries start on the host,
as in the pipeline). Reported: seconds (best of ``--repeats``), queries/s, GFLOP/s
(2 n_q n_ref d per search), the ratio to the card's fp32 GEMM measured here
(torch.mm of two 8192 x 8192 float32 matrices; the bf16 GEMM is shown beside it),
whether the neighbours are those of the fp32 torch engine (share of equal ids, and
the largest relative distance difference: the FAISS engine re-ranks in float64 on
the host, torch in float32 on the GPU), and, for fp16/bf16, the share of queries
the certificate sent back to fp32. FAISS GPU rows appear when the installed FAISS
has GPU support (``bash .ci/install --gpu``). Without a visible CUDA device the
script says so and exits with status 2.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

from manifpt_core.search import Searcher, SearchSettings, build_flat_index
from manifpt_core.search.engines import faiss_gpu_available

# (name, d, n_ref, n_q): the learned spaces' d at a million references, the pixel size, a wide feature space.
SIZES = [("d128-1M", 128, 1_000_000, 65_536), ("d784-200k", 784, 200_000, 32_768),
         ("d2048-100k", 2048, 100_000, 16_384)]
QUICK_SIZES = [("quick-128", 128, 100_000, 8_192), ("quick-784", 784, 20_000, 4_096)]
GEMM_SIZE = 8192
NO_CUDA_EXIT = 2


def no_cuda_message() -> str | None:
    """Why this benchmark cannot run here, or None when a CUDA device is visible."""
    if torch.cuda.is_available():
        return None
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    why = f" (CUDA_VISIBLE_DEVICES={hidden!r})" if hidden is not None else ""
    return (f"bench_search_gpu: no CUDA device is visible to torch{why}; run it on a machine with an NVIDIA GPU, "
            f"or measure the CPU with benchmarks/bench_search.py")


def gemm_tflops(dtype: torch.dtype, repeats: int) -> float:
    """The card's measured TFLOP/s of a square (GEMM_SIZE) matrix product in ``dtype``, best of ``repeats``."""
    a = torch.randn(GEMM_SIZE, GEMM_SIZE, device="cuda").to(dtype)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, device="cuda").to(dtype)
    out = torch.empty(GEMM_SIZE, GEMM_SIZE, device="cuda", dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: cuBLAS handle and kernel choice
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            torch.mm(a, b, out=out)
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / 5)
    return 2 * GEMM_SIZE**3 / best / 1e12


def engines() -> list[tuple[str, SearchSettings]]:
    """(engine, settings) of the exact searches measured: FAISS GPU when installed, torch fp32, fp16, bf16."""
    out = [("faiss-gpu", SearchSettings())] if faiss_gpu_available() else []
    return out + [("torch-cuda", SearchSettings(precision=p)) for p in ("fp32", "fp16", "bf16")]


def timed_search(searcher: Searcher, queries: np.ndarray, repeats: int) -> tuple[float, tuple[np.ndarray, ...]]:
    """Best wall time of ``searcher.search(queries)`` over ``repeats``, waiting for the GPU, and its answer."""
    searcher.search(queries[:1024])  # warm-up: kernels, the pinned upload buffers
    best, found = float("inf"), None
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        found = searcher.search(queries)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, found


def size_rows(name: str, d: int, n_ref: int, n_q: int, fp32_tflops: float, args: argparse.Namespace) -> list[str]:
    """One table row per engine on one size's seeded data."""
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((n_ref, d), dtype=np.float32)
    queries = rng.standard_normal((n_q, d), dtype=np.float32)
    index = build_flat_index(reference)
    flops = 2.0 * n_q * n_ref * d
    results = []
    for engine, settings in engines():
        settings = SearchSettings(precision=settings.precision, query_block=args.query_block)
        searcher = Searcher(index, settings, "cuda", engine=engine)
        seconds, found = timed_search(searcher, queries, args.repeats)
        inner = searcher._engine
        redone = getattr(inner, "fallbacks", 0) / max(getattr(inner, "searched", 0), 1)
        results.append((searcher.engine, seconds, found, redone if settings.precision != "fp32" else None))
        del searcher, inner
        torch.cuda.empty_cache()
    truth = next(found for engine, _, found, _ in results if engine == "torch-cuda")
    rows = []
    for engine, seconds, found, redone in results:
        same = float(np.mean(found[0] == truth[0]))
        rel = float(np.max(np.abs(found[1] - truth[1]) / np.maximum(truth[1], 1e-30)))
        tflops = flops / seconds / 1e12
        rows.append(f"{name:11s} {engine:16s} {seconds:8.3f} {n_q / seconds:11.0f} {tflops * 1e3:9.0f} "
                    f"{tflops / fp32_tflops:8.2f} {same:9.4f} {rel:9.1e} "
                    f"{'' if redone is None else f'{redone:.3f}':>9s}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the script")
    parser.add_argument("--repeats", type=int, default=3, help="timings per engine and size; the best one counts")
    parser.add_argument("--query-block", type=int, default=SearchSettings().query_block,
                        help="search.query_block: queries per block handed to the engine")
    args = parser.parse_args()
    message = no_cuda_message()
    if message:
        print(message, file=sys.stderr)
        return NO_CUDA_EXIT
    fp32 = gemm_tflops(torch.float32, args.repeats)
    bf16 = gemm_tflops(torch.bfloat16, args.repeats)
    print(f"{torch.cuda.get_device_name()} (compute capability {'.'.join(map(str, torch.cuda.get_device_capability()))})"
          f", torch {torch.__version__} (CUDA {torch.version.cuda}); faiss GPU: "
          f"{'yes' if faiss_gpu_available() else 'no (bash .ci/install --gpu)'}")
    print(f"measured GEMM {GEMM_SIZE}^3: fp32 {fp32:.1f} TFLOP/s (TF32 for fp32 matmul: "
          f"{torch.backends.cuda.matmul.allow_tf32}), bf16 {bf16:.1f} TFLOP/s; search.query_block = {args.query_block}")
    print(f"exact search, k=1, best of {args.repeats}; GFLOP/s = 2 n_q n_ref d / s; vs GEMM = / the fp32 GEMM; "
          "same ids = share equal to torch-cuda fp32; redone = share certified-out and searched again in fp32")
    print(f"{'size':11s} {'engine':16s} {'seconds':>8s} {'queries/s':>11s} {'GFLOP/s':>9s} {'vs GEMM':>8s} "
          f"{'same ids':>9s} {'max rel':>9s} {'redone':>9s}")
    for name, d, n_ref, n_q in QUICK_SIZES if args.quick else SIZES:
        print("\n".join(size_rows(name, d, n_ref, n_q, fp32, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
