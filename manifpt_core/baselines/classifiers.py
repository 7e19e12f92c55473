"""The classical classifiers of the baselines, on standardized features (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from manifpt_core.blas import one_blas_thread
from manifpt_core.errors import InputError

CLASSICAL = ("linear-svm", "logistic", "knn")


def fit_classical(kind: str, x: np.ndarray, y: np.ndarray, seed: int, c: float = 1.0, k: int = 5) -> Pipeline:
    """Standardize with the training statistics, then fit a linear SVM, a logistic regression or a k-NN."""
    if kind == "linear-svm":
        model = LinearSVC(C=c, dual="auto", max_iter=10000, random_state=seed)
    elif kind == "logistic":
        model = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    elif kind == "knn":
        model = KNeighborsClassifier(n_neighbors=k)
    else:
        raise InputError(f"unknown classical classifier {kind!r}; one of {CLASSICAL}")
    with one_blas_thread():  # small iterative fits: one BLAS thread is faster (manifpt_core.blas)
        return Pipeline([("scale", StandardScaler()), ("model", model)]).fit(np.asarray(x, np.float64), y)


def standardized(pipeline: Pipeline, x: np.ndarray) -> np.ndarray:
    """The features as the classifier sees them (after the training-set standardization)."""
    return pipeline.named_steps["scale"].transform(np.asarray(x, np.float64))
