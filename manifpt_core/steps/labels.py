"""How methods are named in the report and the robustness table."""

from __future__ import annotations

from manifpt_core.config import Settings
from manifpt_core.names import Method


def method_label(method: Method, settings: Settings) -> str:
    """How a method is named in the report."""
    if method.is_control:
        return "raw-image control"
    if method.is_baseline:
        return settings.baselines.label(method.baseline)
    if method.kind == "knn":
        return f"artifacts ({method.space}, k-NN projection, k={settings.artifacts.knn_k})"
    return f"artifacts ({method.space}, nearest)"
