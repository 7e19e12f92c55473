"""How numbers over seeds are written in reports, tables and metadata: one helper, one convention."""

from __future__ import annotations


def format_mean_std(mean: float, std: float | None, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    """``mean ± std`` scaled (100 for percent), with ``unit`` after the mean.

    A single seed has no spread: its std is None and only the mean is written (never ``± 0``, which
    would claim a measured zero spread).
    """
    text = f"{scale * mean:.{digits}f}{unit}"
    return text if std is None else f"{text} ± {scale * std:.{digits}f}"
