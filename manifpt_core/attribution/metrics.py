"""Attribution metrics on label arrays: accuracy and the confusion matrix."""

from __future__ import annotations

import numpy as np

from manifpt_core.attribution._checks import check_labels
from manifpt_core.errors import InputError


def _check_pair(y_true: object, y_pred: object, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(y_true, np.ndarray):
        raise InputError(f"y_true must be a numpy array, got {type(y_true).__name__}")
    y_true = check_labels(y_true, "y_true", len(y_true), num_classes)
    y_pred = check_labels(y_pred, "y_pred", len(y_true), num_classes)
    if len(y_true) == 0:
        raise InputError("y_true and y_pred are empty; metrics need at least one sample")
    return y_true, y_pred


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of samples whose predicted label equals the true label.

    Both arrays must be 1-D integer arrays of the same non-zero length.
    """
    # Labels only need to be non-negative here; the upper bound is irrelevant for accuracy.
    upper = np.iinfo(np.int64).max
    y_true, y_pred = _check_pair(y_true, y_pred, upper)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts as an int64 (num_classes, num_classes) matrix: rows are true, columns predicted labels."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise InputError(f"num_classes must be a positive int, got {num_classes!r}")
    num_classes = int(num_classes)
    y_true, y_pred = _check_pair(y_true, y_pred, num_classes)
    # One bincount over flattened (true, pred) cells is O(N) and exact.
    flat = y_true * num_classes + y_pred
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)
