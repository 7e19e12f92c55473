"""The forms of a query's answers: a pyarrow table (one row per image, dataset and method), a documented JSON
document, a readable text table, and PNGs for a person to look at.

The JSON schema is ``manifpt.attribution/1`` (docs/querying.md); fields are only ever added to it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from manifpt_core.query.engine import ImageAnswer, MethodAnswer, NearestReal
from manifpt_core.store.atomic import atomic_path

JSON_SCHEMA = "manifpt.attribution/1"

TABLE_SCHEMA = pa.schema([
    ("image", pa.string()),
    ("dataset", pa.string()),
    ("method", pa.string()),
    ("space", pa.string()),
    ("predicted", pa.string()),
    ("probability", pa.float64()),
    ("verdict", pa.string()),
    ("score", pa.float64()),
    ("score_name", pa.string()),
    ("threshold", pa.float64()),
    ("top", pa.list_(pa.struct([("source", pa.string()), ("probability", pa.float64())]))),
    ("seed_predictions", pa.list_(pa.string())),
    ("nn_id", pa.int64()),
    ("nn_sample_id", pa.string()),
    ("nn_path", pa.string()),
    ("nn_distance", pa.float64()),
    ("resize", pa.string()),
    ("error", pa.string()),
    ("factors", pa.string()),  # JSON {factor: {"value", "confidence"}} for an image judged unknown, else null
])


def _row(answer: ImageAnswer, m: MethodAnswer | None) -> dict:
    nearest = {n.space: n for n in answer.nearest_real}
    nn = nearest.get(m.space) if m is not None and m.space else None
    return {
        "image": answer.image, "dataset": answer.dataset,
        "method": m.method if m else None, "space": m.space if m else None,
        "predicted": m.predicted if m else None, "probability": m.probability if m else None,
        "verdict": m.verdict if m else None, "score": m.score if m else None,
        "score_name": m.score_name if m else None, "threshold": m.threshold if m else None,
        "top": [{"source": s, "probability": p} for s, p in m.top] if m else None,
        "seed_predictions": m.seed_predictions if m else None,
        "nn_id": nn.id if nn else None, "nn_sample_id": nn.sample_id if nn else None,
        "nn_path": nn.path if nn else None, "nn_distance": nn.distance if nn else None,
        "resize": json.dumps(answer.resize, sort_keys=True) if answer.resize else None,
        "error": answer.error,
        "factors": json.dumps(_factors_json(m.factors), sort_keys=True) if m is not None and m.factors else None,
    }


def _factors_json(factors: dict[str, tuple[str, float]] | None) -> dict | None:
    return None if factors is None else {k: {"value": v, "confidence": c} for k, (v, c) in factors.items()}


def to_table(answers: Sequence[ImageAnswer]) -> pa.Table:
    """One row per image, dataset and method (an image that failed: one row with its ``error``).

    A method's row carries the nearest real reference of its own space (none for the raw-image control).
    """
    rows = [_row(a, m) for a in answers for m in (a.methods or [None])]
    return pa.Table.from_pylist(rows, schema=TABLE_SCHEMA)


def _nearest_json(n: NearestReal) -> dict:
    return {"space": n.space, "id": n.id, "sample_id": n.sample_id, "path": n.path, "distance": n.distance}


def _method_json(m: MethodAnswer) -> dict:
    return {"method": m.method, "space": m.space, "predicted": m.predicted, "probability": m.probability,
            "verdict": m.verdict, "score": m.score, "score_name": m.score_name, "threshold": m.threshold,
            "accept": m.accept, "top": [{"source": s, "probability": p} for s, p in m.top],
            "seed_predictions": m.seed_predictions, "factors": _factors_json(m.factors)}


def to_json(answers: Sequence[ImageAnswer]) -> dict:
    """The ``manifpt.attribution/1`` document: ``{"schema", "images": [...]}``, one entry per image and dataset."""
    return {"schema": JSON_SCHEMA, "images": [
        {"image": a.image, "dataset": a.dataset, "error": a.error, "resize": a.resize,
         "nearest_real": [_nearest_json(n) for n in a.nearest_real],
         "methods": [_method_json(m) for m in a.methods]} for a in answers]}


def render_text(answers: Sequence[ImageAnswer]) -> str:
    """A readable table: per image and dataset, each method's answer, and its nearest real reference per space."""
    lines = []
    for a in answers:
        lines.append(f"{a.image}  [{a.dataset}]" + (f"  resized {a.resize['size'][0]}x{a.resize['size'][1]} "
                                                     f"({a.resize['filter']})" if a.resize else ""))
        if a.error:
            lines += [f"  error: {a.error}", ""]
            continue
        width = max(len(m.method) for m in a.methods)
        lines.append(f"  {'method':<{width}}  {'verdict':<8} {'source':<16} {'prob':>5}  "
                     f"{'open-set score':<19} {'threshold':>9}  top {3}")
        for m in a.methods:
            verdict = "unknown" if m.verdict == "unknown" else "known"
            threshold = "-" if m.threshold is None else f"{m.threshold:.3f}"
            top = ", ".join(f"{s} {p:.2f}" for s, p in m.top)
            lines.append(f"  {m.method:<{width}}  {verdict:<8} {m.predicted:<16} {m.probability:>5.2f}  "
                         f"{m.score_name:<12} {m.score:>6.3f} {threshold:>9}  {top}")
            if m.factors:
                guessed = ", ".join(f"{k}={v} ({c:.2f})" for k, (v, c) in m.factors.items())
                lines.append(f"  {'':<{width}}  design factors of the unknown model: {guessed}")
        for n in a.nearest_real:
            lines.append(f"  nearest real in {n.space:<5} id {n.id:<6} {n.path}  (distance {n.distance:.3f})")
        lines.append("")
    return "\n".join(lines)


def _to_png(pixels: np.ndarray, path: Path) -> None:
    """Write uint8 (C, H, W) as a grey or RGB PNG."""
    image = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")


def signed_to_pixels(values: np.ndarray) -> np.ndarray:
    """A signed image (an artifact) as uint8 around mid-grey: 0 is 128, the largest magnitude 0 or 255."""
    scale = float(np.abs(values).max()) or 1.0
    return np.clip(np.rint(127.5 + 127.5 * values / scale), 0, 255).astype(np.uint8)


def save_views(folder: Path, stem: str, pixels: np.ndarray, nearest: dict[str, np.ndarray],
               artifacts: dict[str, np.ndarray]) -> list[Path]:
    """``<stem>.png`` (the query), ``<stem>_<space>_nearest_real.png`` and, for image-shaped spaces,
    ``<stem>_<space>_artifact.png`` (signed, mid-grey is zero); each file written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    views = {f"{stem}.png": pixels, **{f"{stem}_{s}_nearest_real.png": p for s, p in nearest.items()},
             **{f"{stem}_{s}_artifact.png": signed_to_pixels(a) for s, a in artifacts.items()}}
    for name, image in views.items():
        with atomic_path(folder / name, lock=False) as tmp:
            _to_png(image, tmp)
        written.append(folder / name)
    return written
