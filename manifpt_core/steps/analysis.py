"""What the fingerprint features say beyond accuracy: t-SNE maps, and NMI with the zoo's design factors.

Both read the attributors' penultimate features of the test set (first seed,
``test_features.npz``); the t-SNE map of the raw pixels of the same test
samples is the reference point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.manifold import TSNE

from manifpt_core.figures import save_embedding_map
from manifpt_core.metrics.separability import nmi_per_factor
from manifpt_core.names import Method
from manifpt_core.steps.attribute import CONTROL, gather_inputs
from manifpt_core.store import Store
from manifpt_core.store.records import NMIResult

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
              factors: dict[str, dict[str, str]], seed: int = 0) -> NMIResult | None:
    """NMI per design factor of each method's fingerprint features of the generated test samples.

    A factor's NMI is taken over the samples of the models that give it (``factors[model]`` may be partial
    or empty: a model folder gives only what its ``card.json`` says); the others are left out of it and named
    in ``left_out``. A factor that fewer than two models give, or on which they all agree, is None. None when
    no factor is given by two models (e.g. only folders without a card).
    """
    models = classes[1:]
    names = sorted({name for model in models for name in factors.get(model, {})})
    giving = {name: [m for m in models if name in factors.get(m, {})] for name in names}
    if not any(len(given) >= 2 for given in giving.values()):
        return None
    left_out = {m: [name for name in names if m not in giving[name]] for m in models}
    table = {}
    for method in methods:
        features, labels = _features(store, method)
        generated = labels > 0  # label 0 is the real class: it has no design factors
        features, sample_models = features[generated], np.asarray(classes, dtype=object)[labels[generated]]
        row: dict[str, float | None] = {}
        for name in names:
            if len(giving[name]) < 2:
                row[name] = None
                continue
            keep = np.isin(sample_models, giving[name])
            values = {m: {name: factors[m][name]} for m in giving[name]}
            nmi = nmi_per_factor(features[keep], sample_models[keep], values, seed=seed)[name]
            row[name] = None if np.isnan(nmi) else nmi  # JSON has no NaN
        table[str(method)] = row
    return NMIResult(methods=table, left_out={m: lacking for m, lacking in left_out.items() if lacking})


def factor_names(result: NMIResult) -> list[str]:
    """The design factors of an NMI result's columns, sorted."""
    return sorted({name for row in result.methods.values() for name in row})
