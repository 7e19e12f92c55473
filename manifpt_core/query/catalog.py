"""What a home's store holds: datasets, sources, spaces, methods, sizes on disk, fingerprints, and what is
missing or stale against the current settings (``manifpt ls``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from manifpt_core.config import Settings
from manifpt_core.errors import ManifptError
from manifpt_core.names import Method
from manifpt_core.query.images import collect_paths
from manifpt_core.steps.attribute import CONTROL
from manifpt_core.steps.generators import configured_models
from manifpt_core.steps.pipeline import plan_pipeline
from manifpt_core.store import Home, Store, load_record
from manifpt_core.store.layout import QUERY_RESULT
from manifpt_core.store.records import FeatureTableSummary, IndexSummary


def size_on_disk(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (0 when absent)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        total += sum((Path(folder) / f).stat().st_size for f in files)
    return total


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _short(h: str | None) -> str | None:
    return h[:12] if h else None


def dataset_catalog(home: Home, settings: Settings) -> dict[str, Any]:
    """One dataset's entry (see :func:`catalog`)."""
    store = Store(home.store_root, settings.dataset)
    entry: dict[str, Any] = {"dataset": settings.dataset, "path": str(store.paths.base),
                             "exists": store.paths.base.is_dir(), "size_bytes": size_on_disk(store.paths.base)}
    sources = []
    for name in store.paths.stored_sources():
        source = store.source(name)
        try:
            record = source.record
        except ManifptError:
            record = None
        paths = [store.paths.images(name), store.paths.source_manifest(name),
                 *(store.paths.embeddings(s, name) for s in settings.spaces),
                 *(store.paths.artifacts(s, name) for s in settings.spaces)]
        sources.append({"source": name, "n_samples": record.summary.n_samples if record else None,
                        "size_bytes": sum(size_on_disk(p) for p in paths),
                        "content_hash": _short(record.content_hash) if record else None})
    entry["sources"] = sources
    spaces = []
    for space in settings.spaces:
        paths = [store.paths.space(space), store.paths.index(space)]
        index = load_record(store.paths.index(space), IndexSummary)
        spaces.append({"space": space, "size_bytes": sum(size_on_disk(p) for p in paths),
                       "index": index.summary.kind if index else None,
                       "n_reference": index.summary.n if index else None,
                       "dim": index.summary.dim if index else None,
                       "content_hash": _short(index.content_hash) if index else None})
    entry["spaces"] = spaces
    methods = []
    for method in [*settings.methods, CONTROL, *(Method.of_baseline(b) for b in settings.baselines.methods)]:
        path = store.method_dir(method)
        row: dict[str, Any] = {"method": str(method), "size_bytes": size_on_disk(path), "accuracy_mean": None,
                               "threshold": None, "open_set_score": None, "content_hash": None}
        if store.paths.metrics(method).is_file():
            metrics = store.attributor(method)
            point = metrics.operating_point
            row.update(accuracy_mean=metrics.accuracy_mean, accuracy_std=metrics.accuracy_std,
                       threshold=point.threshold if point else None, open_set_score=point.score if point else None)
            record = load_record(path, type(metrics))
            row["content_hash"] = _short(record.content_hash) if record else None
        methods.append(row)
    entry["methods"] = methods
    features = load_record(store.paths.features, FeatureTableSummary)
    entry["feature_table"] = ({"path": str(store.paths.samples_table), "n_samples": features.summary.n_samples,
                               "n_predictions": features.summary.n_predictions,
                               "size_bytes": size_on_disk(store.paths.features),
                               "content_hash": _short(features.content_hash)} if features else None)
    entry["status"] = _status(store, settings)
    return entry


def _status(store: Store, settings: Settings) -> dict[str, Any]:
    """Every step's status against the current settings (and the models they configure)."""
    try:
        models = configured_models(settings)
    except ManifptError as err:
        return {"error": f"the configured models cannot be listed: {err}"}
    counts = {"fresh": 0, "stale": 0, "missing": 0}
    todo = []
    for label, planned in plan_pipeline(store, settings, models):
        status = planned if isinstance(planned, str) else planned.status
        key = "missing" if status.startswith("missing") else status
        counts[key] = counts.get(key, 0) + 1
        if key != "fresh":
            todo.append({"step": label, "status": key,
                         "detail": planned if isinstance(planned, str) else str(planned.path)})
    return {"models": models, **counts, "not_fresh": todo}


def query_sets(home: Home) -> list[dict[str, Any]]:
    """The query sets under ``<home>/queries``: their image count and whether they have a result."""
    if not home.queries.is_dir():
        return []
    out = []
    for folder in sorted(p for p in home.queries.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            n_images: int | None = len(collect_paths([folder]))
        except ManifptError:
            n_images = 0
        result = folder / QUERY_RESULT
        out.append({"query_set": folder.name, "n_images": n_images, "result": str(result) if result.is_file()
                    else None})
    return out


def catalog(home: Home, datasets: Sequence[Settings]) -> dict[str, Any]:
    """Every configured dataset's entry and the query sets: what ``manifpt ls --json`` prints."""
    return {"home": str(home.path), "store": str(home.store_root),
            "size_bytes": size_on_disk(home.store_root),
            "datasets": [dataset_catalog(home, s) for s in datasets], "query_sets": query_sets(home)}


def render_catalog(cat: dict[str, Any]) -> str:
    """The readable form of :func:`catalog`."""
    lines = [f"store {cat['store']} ({human_size(cat['size_bytes'])})"]
    for d in cat["datasets"]:
        lines.append("")
        lines.append(f"dataset {d['dataset']}" + ("" if d["exists"] else "  (nothing stored yet)") +
                     f"  {human_size(d['size_bytes'])}")
        if d["sources"]:
            lines.append("  sources:")
            for s in d["sources"]:
                lines.append(f"    {s['source']:<20} {s['n_samples'] if s['n_samples'] is not None else '-':>7} "
                             f"samples  {human_size(s['size_bytes']):>10}  {s['content_hash'] or '(incomplete)'}")
        lines.append("  spaces:")
        for s in d["spaces"]:
            index = f"{s['index']} index of {s['n_reference']} x {s['dim']}" if s["index"] else "no index"
            lines.append(f"    {s['space']:<20} {index:<28} {human_size(s['size_bytes']):>10}  "
                         f"{s['content_hash'] or ''}")
        lines.append("  methods:")
        for m in d["methods"]:
            acc = "not trained" if m["accuracy_mean"] is None else f"test accuracy {100 * m['accuracy_mean']:.2f}%"
            threshold = (f"  open-set threshold {m['threshold']:.3f} ({m['open_set_score']})"
                         if m.get("threshold") is not None else "")
            lines.append(f"    {m['method']:<20} {acc:<24}{threshold}")
        ft = d["feature_table"]
        lines.append(f"  feature table: {ft['n_samples']} samples, {ft['n_predictions']} test predictions, "
                     f"{human_size(ft['size_bytes'])}" if ft else "  feature table: not materialized")
        status = d["status"]
        if "error" in status:
            lines.append(f"  status: {status['error']}")
        else:
            lines.append(f"  status against the current settings: {status['fresh']} fresh, {status['stale']} stale, "
                         f"{status['missing']} missing")
            for t in status["not_fresh"][:20]:
                lines.append(f"    {t['status']:<8} {t['step']}")
            if len(status["not_fresh"]) > 20:
                lines.append(f"    … and {len(status['not_fresh']) - 20} more (--json lists them all)")
    if cat["query_sets"]:
        lines.append("")
        lines.append("query sets:")
        for q in cat["query_sets"]:
            lines.append(f"  {q['query_set']:<20} {q['n_images']} images  "
                         f"{'attributed' if q['result'] else 'not attributed yet'}")
    return "\n".join(lines)
