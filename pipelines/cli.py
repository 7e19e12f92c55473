"""The ``manifpt`` command: run the main job through Dagster, start the web UI, query the store, observe the sources.

It lives with the Dagster wiring because it drives it; it imports Dagster
lazily, after DAGSTER_HOME points at the home's instance.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

from manifpt_core.errors import ManifptError
from manifpt_core.store import Home

logger = logging.getLogger("manifpt")
REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_LOGGERS = ("manifpt", "manifpt_core", "assets", "pipelines")


def _home(args: argparse.Namespace) -> Home:
    return Home(args.home or os.environ.get("MANIFPT_HOME", ".manifpt"))


def _prepare_instance(home: Home) -> None:
    """Point Dagster at ``<home>/dagster`` (its run history), with the repository's instance settings."""
    home.dagster.mkdir(parents=True, exist_ok=True)
    template = REPO_ROOT / "dagster.yaml"
    if not template.is_file():
        raise ManifptError(f"{template} is missing: install manifpt from its repository with `pip install -e .`")
    shutil.copyfile(template, home.dagster / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home.dagster)  # how Dagster finds its instance, here and in `dagster dev`


def _resource(args: argparse.Namespace, home: Home):
    """The resource the command's arguments describe (settings are parsed once, when first used)."""
    from assets.resources import ManifptResource

    return ManifptResource(home=str(home.path), profile=args.profile,
                           config_file=str(Path(args.config).absolute()) if args.config else "",
                           device=args.device or "")


def _dask(args: argparse.Namespace):
    """The Dask resource of ``--workers`` / ``--scheduler`` (neither: the settings' ``cluster.*``)."""
    from assets.resources import DaskResource
    from manifpt_core.cluster import ClusterSettings

    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"manifpt: --workers {args.workers}: give at least 1 worker process, or leave it out")
    if args.scheduler:
        ClusterSettings(address=args.scheduler)  # a malformed address is refused here, with the fix
    return DaskResource(address=args.scheduler or "", workers=args.workers or 0)


def run_main(args: argparse.Namespace) -> int:
    """Observe the sources, then materialize every asset of every dataset, partition by partition, in
    dependency order."""
    home = _home(args)
    _prepare_instance(home)
    import dagster as dg

    from manifpt_core.steps.generators import configured_models
    from pipelines.definitions import (
        build_definitions,
        dataset_specs,
        has_cross_dataset,
    )
    from pipelines.discovery import discover
    from pipelines.jobs import (
        CROSS_DATASET_JOB,
        build_jobs,
        build_observation_jobs,
        partition_keys,
    )
    from pipelines.stopping import Stopper

    resource = _resource(args, home)
    defs = build_definitions(resource, _dask(args))
    started = time.perf_counter()
    reports = []
    specs = dataset_specs(resource)
    # Entered, the instance is also the one Dagster consults while it loads the definitions.
    stopper = Stopper()  # SIGTERM and SIGINT stop the run (pipelines/stopping.py)
    with stopper.installed(), dg.DagsterInstance.get() as instance:
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
                  f"spaces {list(settings.spaces)}, home {home.path}")
            # Observe the sources first: the automation then knows the versions everything was computed from.
            for job, partitioning in build_observation_jobs(ds) + build_jobs(ds):
                for key in keys[partitioning]:
                    _execute(defs.resolve_job_def(job.name), key, instance, stopper)
            reports.append(resource.store(ds.name).paths.report_md)
        if has_cross_dataset(specs):  # last: it reads every dataset's attributors
            _execute(defs.resolve_job_def(CROSS_DATASET_JOB), None, instance, stopper)
            reports.append(home.cross_dataset_report)
    print(f"manifpt: finished in {time.perf_counter() - started:.1f} s")
    for report in reports:
        print(f"manifpt: report at {report}")
    return 0


def _execute(job_def, key, instance, stopper) -> None:
    """Run one job (for one partition key, or none) in process, with its timing on the command line; tagged with
    this process's id (run monitoring fails the run if the process dies), canceled if ``stopper`` is signalled."""
    from dagster._core.utils import make_new_run_id

    from pipelines.launcher import PID_TAG

    t0 = time.perf_counter()
    label = job_def.name + (f"[{key}]" if key else "")
    print(f"manifpt: {label} ...", flush=True)
    run_id = make_new_run_id()
    with stopper.running(instance, run_id):
        result = job_def.execute_in_process(instance=instance, partition_key=key, raise_on_error=True, run_id=run_id,
                                            tags={PID_TAG: str(os.getpid())})
    print(f"manifpt: {label} done in {time.perf_counter() - t0:.1f} s ({_reused_count(result)})", flush=True)


def _reused_count(result) -> str:
    events = result.get_asset_materialization_events()
    flags = [e.materialization.metadata.get("reused") for e in events]
    n_reused = sum(1 for f in flags if f is not None and f.value)
    return f"{len(flags)} materialized, {n_reused} reused from the store"


def run_ui(args: argparse.Namespace) -> int:
    """Replace this process with ``dagster dev`` bound to 127.0.0.1, on the same store and instance."""
    from pipelines.definitions import ENV_CONFIG, ENV_DASK_ADDRESS, ENV_DASK_WORKERS, ENV_DEVICE, ENV_HOME, ENV_PROFILE

    home = _home(args)
    _prepare_instance(home)
    resource = _resource(args, home)
    resource.datasets()  # a bad config is reported here, not as a code location that fails to load
    # The code location is another process: the resource's fields reach it through its environment.
    dask = _dask(args)
    env = dict(os.environ, **{ENV_HOME: resource.home, ENV_PROFILE: resource.profile,
                              ENV_CONFIG: resource.config_file, ENV_DEVICE: resource.device,
                              ENV_DASK_ADDRESS: dask.address, ENV_DASK_WORKERS: str(dask.workers)})
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", str(REPO_ROOT / "workspace.yaml")]
    print(f"manifpt: starting the Dagster UI at http://127.0.0.1:{args.port} (DAGSTER_HOME={home.dagster})")
    os.chdir(REPO_ROOT)
    # A shell without job control (a script, `nohup`, `cmd &`) starts its commands with SIGINT and SIGQUIT
    # ignored, and an ignored signal stays ignored across exec. dagster dev stops its webserver, daemon and code
    # server with SIGINT, so they would then never stop on SIGTERM or Ctrl-C: hand over with the defaults.
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


class _Settings:
    """What a query command needs, without Dagster (which the queries never import, so they start fast): every
    dataset's settings (the device overridden by ``--device``) and its store under the home."""

    def __init__(self, args: argparse.Namespace) -> None:
        import dataclasses

        from manifpt_core.config import load_datasets

        self.home = _home(args)
        datasets = load_datasets(args.profile, str(Path(args.config).absolute()) if args.config else None)
        self.datasets = tuple(dataclasses.replace(s, device=args.device) for s in datasets) if args.device \
            else datasets

    def settings(self, name: str):
        from manifpt_core.errors import InputError

        for settings in self.datasets:
            if settings.dataset == name:
                return settings
        raise InputError(f"no dataset {name!r} in the settings; datasets: {[d.dataset for d in self.datasets]}")

    def store(self, name: str):
        from manifpt_core.store import Store

        return Store(self.home.store_root, self.settings(name).dataset)

    def chosen(self, names: list[str] | None) -> list:
        """The settings of the datasets ``--dataset`` names (repeatable; ``all``), by default the first one."""
        if names and "all" in names:
            return list(self.datasets)
        return [self.settings(name) for name in names] if names else [self.datasets[0]]


def run_attribute(args: argparse.Namespace) -> int:
    """Which model made each image: every stored attributor and the control, per dataset."""
    import json

    from manifpt_core import query

    config = _Settings(args)
    answers = []
    paths = query.collect_paths(args.paths)
    for settings in config.chosen(args.dataset):
        engine = query.QueryEngine(config.store(settings.dataset), settings, args.method or None, args.device)
        save = Path(args.save) / settings.dataset if args.save else None
        answers += query.attribute_images(engine, paths, args.resize, save)
    if args.json:
        print(json.dumps(query.to_json(answers), indent=2))
    else:
        print(query.render_text(answers))
        if args.save:
            print(f"manifpt: images, nearest real images and artifacts written under {args.save}")
    failed = sum(1 for a in answers if a.error)
    if failed:
        print(f"manifpt: {failed} of {len(answers)} images could not be attributed (see their errors)", file=sys.stderr)
    return 1 if failed else 0


def run_ls(args: argparse.Namespace) -> int:
    """Datasets, sources, spaces, methods, sizes, fingerprints, and what is missing or stale."""
    import json

    from manifpt_core.query.catalog import catalog, render_catalog
    from manifpt_core.steps.generators import skipped_model_folders

    config = _Settings(args)
    cat = catalog(config.home, config.datasets)
    skipped = []  # folders under source.path or models_path that are not models, with the reason and fix
    for settings in config.datasets:
        try:
            skipped += [{"dataset": settings.dataset, **s.to_dict()} for s in skipped_model_folders(settings)]
        except ManifptError:
            pass  # the catalog's status already says why the model folders cannot be listed
    if args.json:
        print(json.dumps({**cat, "skipped_model_folders": skipped}, indent=2))
        return 0
    print(render_catalog(cat))
    if skipped:
        print("\nskipped model folders:")
        for entry in skipped:
            print(f"  {entry['dataset']}: {entry['path']}\n    {entry['reason']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Rows of a dataset's feature table."""
    from manifpt_core import query
    from manifpt_core.query.export import export_table, render_rows

    config = _Settings(args)
    settings = config.settings(args.dataset)
    limit = args.limit if args.limit is not None else (None if args.export else 20)
    table = query.feature_rows(config.store(args.dataset), settings, args.space, args.source, limit)
    if args.export:
        print(f"manifpt: wrote {table.num_rows} rows to {export_table(table, args.export)}")
    else:
        print(render_rows(table))
    return 0


def run_sql(args: argparse.Namespace) -> int:
    """One read-only SQL statement over views of the store (DuckDB)."""
    from manifpt_core import query
    from manifpt_core.query.export import export_table, render_rows

    config = _Settings(args)
    with query.connect(config.home, [s.dataset for s in config.datasets]) as db:
        if args.views:
            print("\n".join(db.views) or "no views: materialize the feature table first (manifpt run)")
            return 0
        if not args.statement:
            raise ManifptError("give a SQL statement, e.g. manifpt sql \"SELECT * FROM samples LIMIT 5\", or --views")
        table = db.query(args.statement)
    if args.export:
        print(f"manifpt: wrote {table.num_rows} rows to {export_table(table, args.export)}")
    else:
        print(render_rows(table, args.limit))
    return 0


def run_observe(args: argparse.Namespace) -> int:
    """The content hash of every configured source (and query set), reading only the files changed since the
    last observation unless ``--deep``. Nothing is recorded in Dagster: the observation jobs do that."""
    from manifpt_core.errors import InputError
    from manifpt_core.query.sets import observe_query_set, query_set_names
    from manifpt_core.steps.observe import observe_sources

    config = _Settings(args)
    rows, failed = [], []
    for settings in config.chosen(args.dataset) if args.dataset else config.datasets:
        found = observe_sources(config.store(settings.dataset), settings, args.deep)
        rows += [(f"{settings.dataset}/{source}", observed) for source, observed in found.items()]
    for name in [] if args.dataset else query_set_names(config.home):
        try:
            rows.append((f"queries/{name}", observe_query_set(config.home, name, args.deep)))
        except InputError as err:  # an empty query folder does not stop the others
            failed.append(f"queries/{name}: {err}")
    width = max([len(source) for source, _ in rows] + [6])
    print(f"{'source':<{width}}  {'files':>8}  {'read':>8}  content hash")
    for source, o in rows:
        files, read = (o.n_files, o.n_read) if o.n_files else ("-", "-")  # a zoo card: no file
        print(f"{source:<{width}}  {files:>8}  {read:>8}  {o.content_hash}")
    n_files, n_read = sum(o.n_files for _, o in rows), sum(o.n_read for _, o in rows)
    how = "--deep: every file read, the cache rewritten" if args.deep else "the others from the file hash cache"
    print(f"manifpt: {n_files} files, {n_read} read ({how})")
    for line in failed:
        print(f"manifpt: {line}", file=sys.stderr)
    return 1 if failed else 0


def run_verify(args: argparse.Namespace) -> int:
    """Check every stored output against its integrity manifest (``--deep``: and every file's checksum); with
    ``--repair`` delete what is damaged and the leftovers of killed writes, then recompute them."""
    from manifpt_core.steps.generators import configured_models
    from manifpt_core.steps.pipeline import run_pipeline
    from manifpt_core.store.verify import DAMAGED, OK, UNVERIFIED, repair, verify_root

    config = _Settings(args)
    found = verify_root(config.home.store_root, deep=args.deep)
    for checked in found.damaged:
        print(f"damaged   {checked.path}: {'; '.join(checked.problems)}")
    for leftover in found.leftovers:
        print(f"leftover  {leftover}")
    print(f"manifpt: {len(found.outputs)} outputs checked{' (every byte)' if args.deep else ''}: "
          f"{found.count(OK)} whole, {found.count(DAMAGED)} damaged, {found.count(UNVERIFIED)} stored before "
          f"integrity manifests (record read, files not checked); {len(found.leftovers)} leftovers")
    if not args.repair:
        if found.damaged or found.leftovers:
            print("manifpt: run `manifpt verify --repair` to delete them and recompute the damaged outputs")
        return 1 if found.damaged else 0
    deleted = repair(found)
    print(f"manifpt: deleted {len(deleted)} damaged outputs and leftovers")
    if found.damaged:
        for settings in config.datasets:
            outcomes = run_pipeline(config.store(settings.dataset), settings, configured_models(settings))
            computed = [o for o in outcomes if not o.reused]
            print(f"manifpt: {settings.dataset}: recomputed {len(computed)} outputs, reused {len(outcomes) - len(computed)}")
        again = verify_root(config.home.store_root)
        if again.damaged:
            print(f"manifpt: still damaged after repair: {[str(c.path) for c in again.damaged]}", file=sys.stderr)
            return 1
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=os.environ.get("MANIFPT_PROFILE", "demo"),
                   help="settings profile: demo (default), tiny, full or factorial")
    p.add_argument("--config", default=os.environ.get("MANIFPT_CONFIG"), help="TOML file overriding the profile")
    p.add_argument("--home", default=None, help="folder for store/ and dagster/ (default $MANIFPT_HOME or ./.manifpt)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="compute device (default auto)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show the libraries' informational logs (by default only manifpt's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manifpt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {}
    for name, helptext in (("run", "run the whole pipeline (the main job) and print the report path"),
                           ("ui", "start the Dagster web UI on 127.0.0.1"),
                           ("attribute", "which model made these images (files or folders)"),
                           ("ls", "what the store holds, and what is missing or stale"),
                           ("show", "rows of a dataset's feature table"),
                           ("sql", "a SQL query (DuckDB) over the store's tables"),
                           ("observe", "the content hash of every source, reading only the files that changed"),
                           ("verify", "check every stored output for damage; --repair recomputes what is damaged")):
        commands[name] = p = sub.add_parser(name, help=helptext, description=helptext)
        _common(p)
    commands["ui"].add_argument("--port", type=int, default=3000)
    for name in ("run", "ui"):
        cluster = commands[name].add_mutually_exclusive_group()
        cluster.add_argument("--workers", type=int, metavar="N",
                             help="embed and search on a local Dask cluster of N worker processes (cluster.workers)")
        cluster.add_argument("--scheduler", metavar="ADDRESS",
                             help="embed and search on the running Dask scheduler at ADDRESS (cluster.address)")
    p = commands["attribute"]
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders of images (read recursively)")
    p.add_argument("--dataset", action="append", metavar="D",
                   help="dataset to attribute in (repeatable; 'all'); default the first configured")
    p.add_argument("--method", action="append", metavar="M",
                   help="method (repeatable): rgb, rgb-knn, freq, …, raw; default every attributor and the control")
    p.add_argument("--json", action="store_true", help="print the manifpt.attribution/1 JSON document")
    p.add_argument("--save", metavar="DIR", help="write each image, its nearest real images and artifacts as PNGs")
    p.add_argument("--resize", metavar="FILTER", choices=["nearest", "bilinear", "bicubic", "lanczos", "box"],
                   help="resize images of another size to the dataset's with this filter (recorded in the output)")
    commands["ls"].add_argument("--json", action="store_true", help="print the catalog as JSON")
    p = commands["observe"]
    p.add_argument("--deep", action="store_true",
                   help="read every file again, ignoring the file hash cache, and rewrite the cache")
    p.add_argument("--dataset", action="append", metavar="D",
                   help="observe this dataset's sources only (repeatable; 'all'); default every dataset and the "
                        "query sets")
    p = commands["verify"]
    p.add_argument("--deep", action="store_true", help="also read every file and compare its checksum")
    p.add_argument("--repair", action="store_true",
                   help="delete damaged outputs and leftovers of killed writes, then recompute what was deleted")
    p = commands["show"]
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--space", help="only this space's columns")
    p.add_argument("--source", help="only this source's rows (real or a model)")
    p.add_argument("--limit", type=int, help="at most N rows (default 20 on screen, all when exporting)")
    p.add_argument("--export", metavar="FILE", help="write the rows to FILE.parquet or FILE.csv")
    p = commands["sql"]
    p.add_argument("statement", nargs="?", metavar="SQL", help="one read-only statement, e.g. SELECT … FROM samples")
    p.add_argument("--views", action="store_true", help="list the views and exit")
    p.add_argument("--limit", type=int, default=50, help="rows shown on screen (default 50)")
    p.add_argument("--export", metavar="FILE", help="write the whole result to FILE.parquet or FILE.csv")
    return parser


QUERY_COMMANDS = ("attribute", "ls", "show", "sql", "observe")  # their output is the answer: no progress logs unless -v


def configure_logging(verbose: bool, quiet: bool = False) -> None:
    """manifpt's own loggers at INFO (WARNING for the query commands, ``quiet``); the libraries' (FAISS's loader
    probes, Dagster's, …) at WARNING unless ``verbose``, so that a normal run shows no library chatter that reads
    like an error."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet and not verbose else logging.INFO)
    if not verbose:  # Dagster flags the beta APIs the definitions use at every load; they are not the user's to fix
        warnings.filterwarnings("ignore", message=r".* is currently in beta")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, quiet=args.command in QUERY_COMMANDS)
    try:
        return {"run": run_main, "ui": run_ui, "attribute": run_attribute, "ls": run_ls, "show": run_show,
                "sql": run_sql, "observe": run_observe, "verify": run_verify}[args.command](args)
    except ManifptError as err:
        print(f"manifpt: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C; for `run`, SIGTERM too (pipelines/stopping.py)
        print(f"manifpt: stopped by {stop or 'SIGINT'}; the outputs committed before are kept", file=sys.stderr)
        return getattr(stop, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
