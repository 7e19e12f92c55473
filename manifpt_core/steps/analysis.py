"""What the fingerprint features say beyond accuracy: t-SNE maps, and NMI with the zoo's design factors.

Both read the attributors' penultimate features of the test set (first seed,
``test_features.npz``); the t-SNE map of the raw pixels of the same test
samples is the reference point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.manifold import TSNE

from manifpt_core.figures import save_embedding_map
from manifpt_core.metrics.separability import nmi_per_factor
from manifpt_core.names import Method
from manifpt_core.steps.attribute import CONTROL, gather_inputs
from manifpt_core.store import Store

TSNE_POINTS = 1500  # at most this many test samples per map (seeded draw): t-SNE is quadratic in them


def _features(store: Store, method: Method) -> tuple[np.ndarray, np.ndarray]:
    stored = np.load(store.method_dir(method) / store.attributor(method).features_file)
    return stored["features"], stored["labels"]


def _draw(n: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[:TSNE_POINTS])


def tsne_maps(store: Store, methods: list[Method], classes: list[str], figures: Path, seed: int = 0
              ) -> dict[str, str]:
    """One t-SNE map per method's test features, plus the raw pixels; ``{name: figure path relative to the report}``."""
    maps = {}
    x, y = gather_inputs(store, CONTROL, classes)["test"]
    sources = [("pixels", x.reshape(len(x), -1), y, "raw pixels")]
    for method in methods:
        features, labels = _features(store, method)
        title = "raw-image control features" if method.is_control else f"{method} attributor features"
        sources.append((method.slug, features, labels, title))
    for name, values, labels, title in sources:
        rows = _draw(len(values), seed)
        perplexity = min(30.0, (len(rows) - 1) / 3)
        points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            np.asarray(values[rows], dtype=np.float64))
        save_embedding_map(points, labels[rows], classes, f"t-SNE: {title} (test)", figures / f"tsne_{name}.png")
        maps[name] = f"figures/tsne_{name}.png"
    return maps


def nmi_table(store: Store, methods: list[Method], classes: list[str],
              factors: dict[str, dict[str, str]], seed: int = 0) -> dict[str, dict[str, float]] | None:
    """NMI per design factor of each method's fingerprint features of the generated test samples.

    None when a model has no design factors (a folder of images without a card)
    or fewer than two models are attributed. A factor on which all models agree is None.
    """
    models = classes[1:]
    if len(models) < 2 or any(not factors.get(m) for m in models):
        return None
    table = {}
    for method in methods:
        features, labels = _features(store, method)
        generated = labels > 0  # label 0 is the real class: it has no design factors
        names = np.asarray(classes, dtype=object)[labels[generated]]
        nmi = nmi_per_factor(features[generated], names, factors, seed=seed)
        table[str(method)] = {k: (None if np.isnan(v) else v) for k, v in nmi.items()}  # JSON has no NaN
    return table


def factor_names(table: dict[str, dict[str, Any]]) -> list[str]:
    return sorted({name for row in table.values() for name in row})
