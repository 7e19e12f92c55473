"""Time the main job's steps, cold (empty store) then warm (nothing changed), and print them.

    .venv/bin/python benchmarks/bench_demo.py [--profile demo] [--home DIR]

Each run is a fresh ``manifpt run`` process, so the warm figure includes
start-up (imports, Dagster instance) as a user sees it.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = re.compile(r"^manifpt: (\S+) done in ([\d.]+) s \((\d+) materialized, (\d+) reused")


def run(profile: str, home: Path) -> tuple[float, list[tuple[str, float, int, int]]]:
    manifpt = Path(sys.executable).with_name("manifpt")
    start = time.perf_counter()
    proc = subprocess.run([str(manifpt), "run", "--profile", profile, "--home", str(home)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"manifpt run failed with exit code {proc.returncode}")
    steps = [(m[1], float(m[2]), int(m[3]), int(m[4])) for m in map(LINE.match, proc.stdout.splitlines()) if m]
    return wall, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--home", default=None, help="store home (default: a fresh temporary folder, removed after)")
    args = parser.parse_args()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="manifpt-bench-"))
    try:
        cold_wall, cold = run(args.profile, home)
        warm_wall, warm = run(args.profile, home)
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    print(f"profile {args.profile}: per-run step times (s)")
    print(f"{'run':34s} {'cold':>8s} {'warm':>8s}  reused(warm)")
    for (name, c, n, _), (_, w, _, r) in zip(cold, warm):
        print(f"{name:34s} {c:8.1f} {w:8.1f}  {r}/{n}")
    print(f"{'whole command (wall)':34s} {cold_wall:8.1f} {warm_wall:8.1f}")
    print(f"warm/cold ratio: {warm_wall / cold_wall:.3f}")


if __name__ == "__main__":
    main()
