"""The ``manifpt`` command: run the main job through Dagster, or start the web UI on the same store.

It lives with the Dagster wiring because it drives it; it imports Dagster
lazily, after the environment (home, profile, DAGSTER_HOME) is set.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from manifpt_core.errors import ManifptError

logger = logging.getLogger("manifpt")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _prepare_env(args: argparse.Namespace) -> Path:
    """Export the settings for the code location and point DAGSTER_HOME at ``<home>/dagster``."""
    home = Path(args.home or os.environ.get("MANIFPT_HOME", ".manifpt")).absolute()
    os.environ["MANIFPT_HOME"] = str(home)
    os.environ["MANIFPT_PROFILE"] = args.profile
    if args.config:
        os.environ["MANIFPT_CONFIG"] = str(Path(args.config).absolute())
    if args.device:
        os.environ["MANIFPT_DEVICE"] = args.device
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    template = REPO_ROOT / "dagster.yaml"
    if not template.is_file():
        raise ManifptError(f"{template} is missing: install manifpt from its repository with `pip install -e .`")
    shutil.copyfile(template, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return home


def run_main(args: argparse.Namespace) -> int:
    """Observe the sources, then materialize every asset of every dataset, partition by partition, in
    dependency order."""
    home = _prepare_env(args)
    import dagster as dg

    from manifpt_core.steps.cross import cross_dataset_path
    from pipelines.definitions import (
        build_definitions,
        dataset_specs,
        has_cross_dataset,
    )
    from pipelines.discovery import configured_models, discover
    from pipelines.jobs import (
        CROSS_DATASET_JOB,
        build_jobs,
        build_observation_jobs,
        partition_keys,
    )
    from pipelines.resources import resource_from_env

    resource = resource_from_env()
    defs = build_definitions(resource)
    started = time.perf_counter()
    reports = []
    specs = dataset_specs(resource)
    # Entered, the instance is also the one Dagster consults while it loads the definitions.
    with dg.DagsterInstance.get() as instance:
        for change in discover(instance, resource):  # the discovery sensor's check, applied here and now
            if change.added:
                instance.add_dynamic_partitions(change.partitions.name, change.added)
            for model in change.removed:
                instance.delete_dynamic_partition(change.partitions.name, model)
            print(f"manifpt: {change.dataset}: models added {change.added}, removed {change.removed}")
        for ds in specs:
            settings = resource.settings(ds.name)
            models = configured_models(settings)
            keys = partition_keys(ds, models)
            print(f"manifpt: dataset {ds.name!r} ({settings.profile} profile), models {models}, "
                  f"spaces {list(settings.spaces)}, home {home}")
            # Observe the sources first: the automation then knows the versions everything was computed from.
            for job, partitioning in build_observation_jobs(ds) + build_jobs(ds):
                for key in keys[partitioning]:
                    _execute(defs.resolve_job_def(job.name), key, instance)
            reports.append(Path(home) / "store" / ds.name / "reports" / "report.md")
        if has_cross_dataset(specs):  # last: it reads every dataset's attributors
            _execute(defs.resolve_job_def(CROSS_DATASET_JOB), None, instance)
            reports.append(cross_dataset_path(Path(home) / "store") / "report.md")
    print(f"manifpt: finished in {time.perf_counter() - started:.1f} s")
    for report in reports:
        print(f"manifpt: report at {report}")
    return 0


def _execute(job_def, key, instance) -> None:
    """Run one job (for one partition key, or none) in process, with its timing on the command line."""
    t0 = time.perf_counter()
    label = job_def.name + (f"[{key}]" if key else "")
    print(f"manifpt: {label} ...", flush=True)
    result = job_def.execute_in_process(instance=instance, partition_key=key, raise_on_error=True)
    print(f"manifpt: {label} done in {time.perf_counter() - t0:.1f} s ({_reused_count(result)})", flush=True)


def _reused_count(result) -> str:
    events = result.get_asset_materialization_events()
    flags = [e.materialization.metadata.get("reused") for e in events]
    n_reused = sum(1 for f in flags if f is not None and f.value)
    return f"{len(flags)} materialized, {n_reused} reused from the store"


def run_ui(args: argparse.Namespace) -> int:
    """Replace this process with ``dagster dev`` bound to 127.0.0.1, on the same store and instance."""
    _prepare_env(args)
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", str(REPO_ROOT / "workspace.yaml")]
    print(f"manifpt: starting the Dagster UI at http://127.0.0.1:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    os.chdir(REPO_ROOT)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manifpt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("run", "run the whole pipeline (the main job) and print the report path"),
                           ("ui", "start the Dagster web UI on 127.0.0.1")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--profile", default=os.environ.get("MANIFPT_PROFILE", "demo"),
                       help="settings profile: demo (default), tiny or full")
        p.add_argument("--config", default=os.environ.get("MANIFPT_CONFIG"), help="TOML file overriding the profile")
        p.add_argument("--home", default=None, help="folder for store/ and dagster/ (default $MANIFPT_HOME or ./.manifpt)")
        p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="compute device (default auto)")
        if name == "ui":
            p.add_argument("--port", type=int, default=3000)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return {"run": run_main, "ui": run_ui}[args.command](args)
    except ManifptError as err:
        print(f"manifpt: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
