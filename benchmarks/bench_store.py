"""What the store's reliability costs: the commit (record, integrity manifest, versioned link, lock) against a
bare Zarr write of the same data, an open with its integrity check against a bare ``zarr.open``, and ``verify``.

    .venv/bin/python benchmarks/bench_store.py [--rows 60000] [--dim 784] [--chunk-rows 1024] [--repeats 3]

Writes an (rows, dim) float32 array of seeded data (the demo's embeddings in rgb are 60,000 x 784, 188 MB):

- bare: ``create_rows`` into a fresh folder, nothing else (the write before records, locks and versions);
- committed: the same through ``run_cached`` (lock, leftover check, record, integrity manifest with every
  file's CRC-32, version rename and link swap, integrity check at reuse);
- open: ``open_array`` (lease plus integrity check by size) and reading one row, against ``zarr.open`` and one
  row, averaged over 200 opens;
- verify: the cheap check (sizes) and the deep one (every byte's CRC-32) of the committed output.

Each timing is the best of ``--repeats``; printed with the ratios measured in this one run. The files were
just written, so reads come from the page cache. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from manifpt_core.store import open_array, run_cached
from manifpt_core.store.arrays import create_rows
from manifpt_core.store.records import Summary
from manifpt_core.store.verify import check_output


@dataclass(frozen=True)
class Written(Summary):
    rows: int = 0


def _write(folder: Path, data: np.ndarray, chunk_rows: int) -> str:
    writer = create_rows(folder, None, data.shape, np.float32, chunk_rows)
    for start in range(0, len(data), chunk_rows * 4):
        writer.write(data[start : start + chunk_rows * 4])
    return writer.content_hash()


def best(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--chunk-rows", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--opens", type=int, default=200)
    args = parser.parse_args()
    data = np.random.default_rng(0).normal(size=(args.rows, args.dim)).astype(np.float32)
    mb = data.nbytes / 1e6
    work = Path(tempfile.mkdtemp(prefix="bench_store_"))
    try:
        counter = iter(range(10**9))

        def bare() -> None:
            folder = work / f"bare{next(counter)}.zarr"
            _write(folder, data, args.chunk_rows)
            shutil.rmtree(folder)

        def committed() -> None:
            run_cached(work / "out.zarr", "bench", "1", {}, {"run": next(counter)},
                       lambda tmp, fp: (_write(tmp, data, args.chunk_rows), Written(len(data))), Written)

        t_bare, t_commit = best(args.repeats, bare), best(args.repeats, committed)
        path = work / "out.zarr"
        n_files = sum(1 for p in path.resolve().rglob("*") if p.is_file())

        def opens(fn) -> float:
            t0 = time.perf_counter()
            for _ in range(args.opens):
                fn()[0]
            return (time.perf_counter() - t0) / args.opens

        t_open = min(opens(lambda: open_array(path)) for _ in range(args.repeats))
        t_zarr = min(opens(lambda: zarr.open(store=str(path.resolve()), mode="r")) for _ in range(args.repeats))
        t_verify = best(args.repeats, lambda: check_output(path))
        t_deep = best(args.repeats, lambda: check_output(path, deep=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"array {args.rows} x {args.dim} float32 ({mb:.0f} MB), chunks of {args.chunk_rows} rows, {n_files} files")
    print(f"write  bare {t_bare:.3f} s ({mb / t_bare:.0f} MB/s)   committed {t_commit:.3f} s "
          f"({mb / t_commit:.0f} MB/s)   ratio committed/bare {t_commit / t_bare:.2f}")
    print(f"open + one row   zarr.open {t_zarr * 1e3:.2f} ms   open_array {t_open * 1e3:.2f} ms   "
          f"ratio {t_open / t_zarr:.2f}")
    print(f"verify   sizes {t_verify * 1e3:.1f} ms   deep (CRC-32) {t_deep:.3f} s ({mb / t_deep:.0f} MB/s)")


if __name__ == "__main__":
    main()
