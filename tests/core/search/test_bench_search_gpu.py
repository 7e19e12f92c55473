"""The GPU search benchmark refuses cleanly where no CUDA device is visible (its measurements need one)."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_search_gpu.py"


def test_the_gpu_benchmark_says_why_it_cannot_run_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU, so this runs on GPU machines too
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick"], check=False, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2
    assert "no CUDA device is visible to torch (CUDA_VISIBLE_DEVICES='')" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
