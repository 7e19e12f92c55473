"""The cost of adding generative model M+1 to a store of M, by enrollment and by full retrain, and the accuracy of each.

    .venv/bin/python benchmarks/bench_add_model.py [--profile demo] [--models 3] [--seeds 1] [--home DIR]
                                                   [--from-home DIR] [--forced] [--open-set auto]

One Fashion-MNIST dataset (the clothing subset, demo sizes) with the first M zoo models of the profile, through
the deployment's sensor and automation (an in-process driver of the same definitions):

1. the cold run on M models (discovery sensor, then automation ticks until nothing is requested);
2. model M+1 is added to the config and the same loop runs with ``attribution.retrain = "enroll"`` (the default):
   the model's own work (its generator, images, embeddings, artifacts), the enrollment steps (attributors,
   control, baselines, robustness twins) and everything else are timed apart;
3. the retraining steps run again tagged ``manifpt/retrain = full`` (as the full-retrain schedules run them),
   then the automation settles: the cost a full retrain adds, timed the same way.

Printed: per method, test accuracy over all classes and on the new model's test samples after enrollment and
after the full retrain (the same test samples), and the costs against the new model's own work (target: adding by
enrollment <= 1.2 x its own work). ``--from-home`` copies a home that already holds the zoo's upstream outputs
(e.g. the demo's) and deletes model M+1's and later models' stored data, so that the cold run trains only the
attributors while model M+1's own work is measured from nothing. ``--forced`` finally forces every job once more
and counts the outputs reused.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.attribution import RETRAIN_TAG
from assets.partitions import DatasetSpec
from assets.resources import ManifptResource
from manifpt_core.config import PROFILES
from manifpt_core.names import Method
from manifpt_core.steps.attribute import CONTROL
from manifpt_core.store.atomic import remove_paths
from pipelines.driver import AutomationDriver
from pipelines.jobs import build_jobs, partition_keys

DATASET = "fmnist_clothing"
ENROLLING = ("attributor", "raw_control", "baseline", "robustness")  # the steps enrollment replaces retraining in
RETRAIN_JOBS = (("attribution", "space"), ("control", "none"), ("baselines", "baseline"), ("robustness_eval", "none"))


def write_config(path: Path, profile: str, n_models: int, seeds: int, open_set: str | None = None) -> None:
    zoo = PROFILES[profile]["zoo"][:n_models]
    lines = [f'dataset = "{DATASET}"', f"seeds = {list(range(seeds))}",
             *([f'open_set_holdout = "{open_set}"'] if open_set else []),
             "[source]", 'kind = "fashion_mnist"', "classes = [0, 1, 2, 3, 4, 6]"]
    for card in zoo:
        lines += ["[[zoo]]", f'name = "{card["name"]}"', f'family = "{card["family"]}"', f"seed = {card['seed']}"]
        if "train" in card:
            lines.append("train = {" + ", ".join(f"{k} = {v}" for k, v in card["train"].items()) + "}")
    path.write_text("\n".join(lines) + "\n")


def split(steps, models: list[str], twins: list[float] | None = None) -> tuple[float, float, float]:
    """Seconds of (the models' own work, the enrollment or retraining steps, everything else) among ``steps``.
    Each robustness run counts its own twins' seconds (``twins``: one entry per robustness run, in order, from its
    materialization's metadata) as enrollment or retraining, and the rest of it (the evaluation of every test
    image) as everything else."""
    own = enrolling = other = 0.0
    pending = list(twins or [])
    robustness_runs = 0
    for step in steps:
        names = {k.split("/")[-1].split("__")[-1] for k in step.keys}
        model = str(step.partition).split("|")[0] if step.partition is not None else None
        if model in models:
            own += step.seconds
        elif names & {"robustness", "robustness_eval"}:  # the asset, or its job as the full retrain runs it
            robustness_runs += 1
            if not pending:
                raise RuntimeError(f"robustness run {robustness_runs} has no materialization with its phases; "
                                   f"{len(twins or [])} were found")
            part = min(pending.pop(0), step.seconds)
            enrolling, other = enrolling + part, other + step.seconds - part
        elif names & set(ENROLLING) or names & {job for job, _ in RETRAIN_JOBS}:
            enrolling += step.seconds
        else:
            other += step.seconds
    if pending:
        raise RuntimeError(f"{len(pending)} robustness materializations more than the {robustness_runs} robustness "
                           "runs timed")
    return own, enrolling, other


def twin_seconds(instance: dg.DagsterInstance, after: float) -> list[float]:
    """Per robustness materialization since ``after`` (a timestamp), oldest first: the seconds it spent on its
    twins (enrolling or training them); 0 for one that reused its output."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey([DATASET, "robustness"]), after_timestamp=after), limit=100,
        ascending=True).records
    phases = [r.asset_materialization.metadata.get("phases") for r in records]
    return [float(p.value.get("twins", 0.0)) if p is not None else 0.0 for p in phases]


def accuracies(resource: ManifptResource, new: str) -> dict[str, tuple[float, float, str]]:
    """Per attributor, control and CNN baseline: (test accuracy over every class, on the new model's samples, how
    it was trained), first seed."""
    settings, store = resource.settings(DATASET), resource.store(DATASET)
    methods = [*settings.methods, CONTROL, *(Method.of_baseline(b) for b in settings.baselines.methods
                                             if settings.baselines.classifier(b) == "cnn")]
    out = {}
    for method in methods:
        m = store.attributor(method)
        out[str(method)] = (m.per_seed[0].test_accuracy, m.per_class_accuracy[new],
                            m.training.mode if m.training else "-")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="sizes and zoo (demo; tiny for a quick check)")
    parser.add_argument("--models", type=int, default=3, help="M, the models of the cold run (fewer than the zoo's)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--home", default=None, help="store home (default: a fresh temporary folder, removed after)")
    parser.add_argument("--from-home", default=None, help="start from a copy of this home's store (see above)")
    parser.add_argument("--forced", action="store_true", help="finally force every job and count reused outputs")
    parser.add_argument("--open-set", default=None, help="open_set_holdout for the run (default: the profile's, "
                        "every model left out in turn; 'auto' leaves out one, for a shorter benchmark)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="manifpt-bench-add-"))
    config = home / "bench.toml"
    home.mkdir(parents=True, exist_ok=True)
    zoo = [c["name"] for c in PROFILES[args.profile]["zoo"]]
    if not 1 <= args.models < len(zoo):
        raise SystemExit(f"--models must be in 1..{len(zoo) - 1} for the {args.profile} profile's zoo")
    write_config(config, args.profile, args.models, args.seeds, args.open_set)
    first, added = zoo[: args.models], zoo[args.models]
    try:
        dagster_home = home / "dagster"
        dagster_home.mkdir(exist_ok=True)
        shutil.copyfile(Path(__file__).resolve().parents[1] / "dagster.yaml", dagster_home / "dagster.yaml")
        resource = ManifptResource(home=str(home), profile=args.profile, config_file=str(config))
        if args.from_home:
            shutil.copytree(Path(args.from_home) / "store", home / "store", symlinks=True, dirs_exist_ok=True)
            settings = resource.settings(DATASET)
            for model in zoo[args.models:]:
                remove_paths(resource.store(DATASET).paths.model_paths(model, settings.spaces))
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            driver = AutomationDriver(resource, instance)
            driver.tick()
            start = time.perf_counter()
            driver.sensor()
            driver.settle()
            cold = time.perf_counter() - start
            n_cold = len(driver.steps)

            write_config(config, args.profile, args.models + 1, args.seeds, args.open_set)
            start, stamp = time.perf_counter(), time.time()
            driver.sensor()
            driver.settle()
            add = time.perf_counter() - start
            own_add, enroll_add, other_add = split(driver.steps[n_cold:], [added], twin_seconds(instance, stamp))
            enrolled = accuracies(resource, added)
            n_add = len(driver.steps)

            ds = DatasetSpec.of(resource.settings(DATASET))
            keys = partition_keys(ds, first + [added])
            start, stamp = time.perf_counter(), time.time()
            for job, partitioning in RETRAIN_JOBS:
                if job == "baselines" and not ds.baselines:
                    continue
                for key in keys[partitioning]:
                    driver.execute_job(ds.job_name(job), key, tags={RETRAIN_TAG: "full"})
            driver.settle()
            full = time.perf_counter() - start
            _, retrain_full, other_full = split(driver.steps[n_add:], [added], twin_seconds(instance, stamp))
            retrained = accuracies(resource, added)

            if args.forced:
                start = time.perf_counter()
                reused = total = 0
                for job, partitioning in build_jobs(ds):
                    for key in keys[partitioning]:
                        result = driver.execute_job(job.name, key)
                        flags = [e.materialization.metadata["reused"].value
                                 for e in result.get_asset_materialization_events()]
                        reused, total = reused + sum(flags), total + len(flags)
                forced = time.perf_counter() - start
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)

    print(f"{args.profile} sizes, M = {args.models} models ({', '.join(first)}) + {added}, {args.seeds} seed(s); "
          f"cold run on M: {cold:.1f} s")
    ticks = add - own_add - enroll_add - other_add
    print(f"adding {added} by enrollment: {add:.1f} s = its own work {own_add:.1f} s + enrollment {enroll_add:.1f} s "
          f"(attributors, control, baselines, robustness twins) + evaluations over every class {other_add:.1f} s "
          f"(robustness evaluation, report, feature table) + sensor and automation ticks {ticks:.1f} s")
    print(f"  against its own work: own work + enrollment {(own_add + enroll_add) / own_add:.2f}x (target <= 1.2); "
          f"all of it, evaluations and ticks included, {add / own_add:.2f}x; enrollment alone "
          f"{enroll_add / own_add:.2f}x, evaluations {other_add / own_add:.2f}x")
    # Wall clock, as the enrollment's cost is: the retraining and other steps, and the runs' overhead between them.
    print(f"retraining in full instead: {full:.1f} s = {retrain_full:.1f} s of retraining (robustness twins included) "
          f"+ {other_full:.1f} s of evaluations + {full - retrain_full - other_full:.1f} s of run overhead and ticks; "
          f"adding {added} that way costs {own_add + full:.1f} s, {(own_add + full) / own_add:.2f}x its own work "
          f"(own work + retraining {(own_add + retrain_full) / own_add:.2f}x)")
    print("| method | enrolled: all | enrolled: new model | full retrain: all | full retrain: new model | gap all |")
    print("|---|---|---|---|---|---|")
    for method, (acc, new, _) in enrolled.items():
        f_acc, f_new, _ = retrained[method]
        print(f"| {method} | {100 * acc:.1f}% | {100 * new:.1f}% | {100 * f_acc:.1f}% | {100 * f_new:.1f}% | "
              f"{100 * (acc - f_acc):+.1f} |")
    if args.forced:
        print(f"forced rerun of every job: {forced:.1f} s, {reused}/{total} outputs reused, "
              f"{forced / cold:.3f} of the cold run")


if __name__ == "__main__":
    main()
