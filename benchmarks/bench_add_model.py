"""The cost of adding generative model M+1 to a store of M, through the deployment's sensor and automation.

    .venv/bin/python benchmarks/bench_add_model.py [--profile demo] [--models 3] [--seeds 1] [--home DIR]

One Fashion-MNIST dataset (the clothing subset, demo sizes) with the first M
zoo models of the demo: a cold run from an empty store (discovery sensor, then
automation ticks until nothing is requested), then model M+1 is added to the
config and the same loop runs again, then every job is forced once more.
Printed: the cold time, the per-model work and the retraining it contained,
the cost of model M+1 against the target (1/M of the cold per-model work plus
the retraining), and the forced rerun against the cold run (target <= 5%).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from manifpt_core.config import PROFILES
from pipelines.driver import AutomationDriver
from pipelines.jobs import build_jobs, partition_keys

RETRAIN = ("attributor", "raw_control", "baseline", "attribution_report")


def write_config(path: Path, profile: str, n_models: int, seeds: int) -> None:
    zoo = PROFILES[profile]["zoo"][:n_models]
    lines = ['dataset = "fmnist_clothing"', f"seeds = {list(range(seeds))}",
             "[source]", 'kind = "fashion_mnist"', "classes = [0, 1, 2, 3, 4, 6]"]
    for card in zoo:
        lines += ["[[zoo]]", f'name = "{card["name"]}"', f'family = "{card["family"]}"', f"seed = {card['seed']}"]
    path.write_text("\n".join(lines) + "\n")


def split(steps, models: list[str]) -> tuple[float, float, float]:
    """Seconds of (the models' own work, retraining, everything else) among executed steps."""
    own = retrain = other = 0.0
    for step in steps:
        names = {k.split("/")[-1] for k in step.keys}
        model = str(step.partition).split("|")[0] if step.partition is not None else None
        if model in models:
            own += step.seconds
        elif names & set(RETRAIN):
            retrain += step.seconds
        else:
            other += step.seconds
    return own, retrain, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="sizes and zoo (demo; tiny for a quick check)")
    parser.add_argument("--models", type=int, default=3, help="M, the models of the cold run (fewer than the zoo's)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--home", default=None, help="store home (default: a fresh temporary folder, removed after)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="manifpt-bench-add-"))
    config = home / "bench.toml"
    home.mkdir(parents=True, exist_ok=True)
    zoo = [c["name"] for c in PROFILES[args.profile]["zoo"]]
    if not 1 <= args.models < len(zoo):
        raise SystemExit(f"--models must be in 1..{len(zoo) - 1} for the {args.profile} profile's zoo")
    write_config(config, args.profile, args.models, args.seeds)
    first, added = zoo[: args.models], zoo[args.models]
    try:
        dagster_home = home / "dagster"
        dagster_home.mkdir(exist_ok=True)
        shutil.copyfile(Path(__file__).resolve().parents[1] / "dagster.yaml", dagster_home / "dagster.yaml")
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            driver = AutomationDriver(ManifptResource(home=str(home), profile=args.profile, config_file=str(config)), instance)
            driver.tick()
            start = time.perf_counter()
            driver.sensor()
            driver.settle()
            cold = time.perf_counter() - start
            own_cold, retrain_cold, other_cold = split(driver.steps, first)
            n_cold = len(driver.steps)

            write_config(config, args.profile, args.models + 1, args.seeds)
            start = time.perf_counter()
            driver.sensor()
            driver.settle()
            add = time.perf_counter() - start
            own_add, retrain_add, other_add = split(driver.steps[n_cold:], [added])

            settings = driver.resource.settings("fmnist_clothing")
            ds = DatasetSpec.of(settings)
            models = sorted(instance.get_dynamic_partitions(ds.models.name))
            keys = partition_keys(ds, models)
            start = time.perf_counter()
            reused = total = 0
            for job, partitioning in build_jobs(ds):
                for key in keys[partitioning]:
                    result = driver.execute_job(job.name, key)
                    flags = [e.materialization.metadata["reused"].value for e in result.get_asset_materialization_events()]
                    reused, total = reused + sum(flags), total + len(flags)
            forced = time.perf_counter() - start
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)

    per_model = own_cold / args.models
    # The retraining with M+1 models costs more than with M (one more class of samples to train on), so the
    # target counts it as measured in the same run; the cold run's retraining is printed beside it.
    target = per_model + retrain_add
    overhead = add - own_add - retrain_add - other_add
    print(f"{args.profile} sizes, cold run, M = {args.models} models ({', '.join(first)}), {args.seeds} seed(s): {cold:.1f} s")
    print(f"  per-model work {per_model:.1f} s a model, retraining {retrain_cold:.1f} s, "
          f"real images/spaces/indexes {other_cold:.1f} s")
    print(f"adding model M+1 ({added}): {add:.1f} s = its own work {own_add:.1f} s + retraining {retrain_add:.1f} s "
          f"+ other steps {other_add:.1f} s + sensor and automation ticks {overhead:.1f} s")
    print(f"  relative to the cold run: {add / cold:.3f}")
    print(f"  its own work against 1/M of the cold per-model work: {own_add / per_model:.3f}")
    print(f"  the retraining against the cold run's (M classes + real -> M+1): {retrain_add / retrain_cold:.3f} "
          f"(expected about {(args.models + 2) / (args.models + 1):.3f})")
    print(f"  against the target (1/M of the cold per-model work + the retraining = {target:.1f} s): "
          f"{add / target:.3f} (target <= 1 plus the ticks)")
    print(f"forced rerun of every job: {forced:.1f} s, {reused}/{total} outputs reused, "
          f"{forced / cold:.3f} of the cold run (target <= 0.05)")


if __name__ == "__main__":
    main()
