"""The cost of observing a model folder with and without the per-file hash cache.

    .venv/bin/python benchmarks/bench_observe.py [--n 20000] [--size 256] [--dir DIR] [--keep]

Writes ``--n`` seeded RGB PNGs of ``--size`` x ``--size`` (uncompressed PNG, so each file has the byte count of
the paper's 256x256x3 images), sets their modification time an hour back (a folder that has been there a
while), then observes the folder:

- reading every file (no cache: the behaviour before the cache),
- cold (an empty cache: every file read, the cache written),
- warm (nothing changed: no file read),
- after one file changed (one file read),
- deep (the cache ignored and rewritten: every file read).

Printed per pass: files read, MiB read, seconds and the content hash; then whether the hashes agree, and the
ratio of the no-cache pass to the warm one. The files were just written, so the passes that read them mostly
read the operating system's page cache: from a cold disk they take longer, and the ratio is a lower bound.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from manifpt_core.sources import observe_folder
from manifpt_core.store.file_hashes import FileHashCache


def write_folder(folder: Path, n: int, size: int, seed: int = 0) -> int:
    """``n`` seeded noise PNGs (stored, not compressed) in ``folder``, modified an hour ago; returns their bytes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.png", compress_level=0)
    then = time.time() - 3600
    total = 0
    for path in folder.iterdir():
        os.utime(path, (then, then))
        total += path.stat().st_size
    return total


def timed_pass(label: str, folder: Path, cache: FileHashCache | None, mib_per_file: float) -> tuple[float, str]:
    start = time.perf_counter()
    observed = observe_folder(folder, cache)
    seconds = time.perf_counter() - start
    print(f"{label:<26} {observed.n_read:>7} {observed.n_read * mib_per_file:>9.0f} {seconds:>8.2f}  "
          f"{observed.content_hash[:16]}")
    return seconds, observed.content_hash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="images in the folder (default 20000)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels, RGB (default 256)")
    parser.add_argument("--dir", help="where to write the folder and the cache (default a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    args = parser.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_observe_"))
    folder, store = work / "model", work / "store"
    try:
        start = time.perf_counter()
        total = write_folder(folder, args.n, args.size)
        mib_per_file = total / args.n / 2**20
        print(f"wrote {args.n} PNGs of {args.size}x{args.size}x3 ({total / 2**30:.2f} GiB) in "
              f"{time.perf_counter() - start:.0f} s under {work}")
        print(f"{'pass':<26} {'read':>7} {'MiB read':>9} {'seconds':>8}  content hash")
        cache = FileHashCache.in_store(store)
        every, reference = timed_pass("no cache (every file)", folder, None, mib_per_file)
        cold, cold_hash = timed_pass("cold (empty cache)", folder, cache, mib_per_file)
        warm, warm_hash = timed_pass("warm (nothing changed)", folder, cache, mib_per_file)
        changed = folder / "000000.png"
        data = changed.read_bytes()
        changed.write_bytes(data[: len(data) // 2] + bytes(12) + data[len(data) // 2 + 12 :])  # same size
        os.utime(changed, (time.time() - 60, time.time() - 60))
        _, after = timed_pass("warm (one file changed)", folder, cache, mib_per_file)
        _, deep = timed_pass("deep (cache ignored)", folder, FileHashCache(cache.directory, deep=True), mib_per_file)
        cache_mib = sum(p.stat().st_size for p in cache.directory.iterdir()) / 2**20
        print(f"cold and warm hash == no cache hash: {cold_hash == warm_hash == reference}; after the change, "
              f"warm hash == deep hash: {after == deep} (and != before: {after != reference})")
        print(f"cache file {cache_mib:.1f} MiB; no cache / warm = {every / warm:.0f}x, "
              f"cold / warm = {cold / warm:.0f}x")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
