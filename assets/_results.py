"""Turning a step's Outcome into Dagster metadata and a data version."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import dagster as dg

from manifpt_core.store import Outcome


def png_markdown(path: Path, title: str) -> dg.MetadataValue:
    """A PNG embedded in markdown metadata, so the UI shows the figure itself."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{data})")


def _value(key: str, value: Any) -> Any:
    if key == "path" or (key in ("manifest", "folder") and isinstance(value, str)):
        return dg.MetadataValue.path(value)
    if isinstance(value, (dict, list)):
        return dg.MetadataValue.json(value)
    if value is None:
        return dg.MetadataValue.text("n/a")
    return value


def to_result(context: dg.AssetExecutionContext, outcome: Outcome, **extra: Any) -> dg.MaterializeResult:
    """MaterializeResult whose data version is the output's content hash."""
    verb = "reused the stored" if outcome.reused else "computed"
    context.log.info(f"{outcome.step}: {verb} {outcome.path} in {outcome.seconds:.1f} s")
    metadata = {key: _value(key, value) for key, value in outcome.metadata().items()}
    metadata.update(extra)
    return dg.MaterializeResult(data_version=dg.DataVersion(outcome.content_hash), metadata=metadata)
