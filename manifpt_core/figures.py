"""PNG figures for reports and Dagster metadata: sample grids, confusion matrices, per-class bars, t-SNE maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from manifpt_core.store.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(Path(path), lock=False) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def save_image_grid(images: np.ndarray, path: Path, columns: int = 8, scale: int = 2) -> Path:
    """Tile uint8 images (N, C, H, W) into one PNG, ``columns`` wide, each pixel ``scale``x."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, columns)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + k * (w + 1) : 1 + k * (w + 1) + w] = img.transpose(1, 2, 0)
    pil = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    with atomic_path(Path(path), lock=False) as tmp:
        pil.save(tmp, format="PNG")
    return Path(path)


def save_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], title: str, path: Path) -> Path:
    """Row-normalised confusion matrix (rows: true class) with counts annotated."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    size = 1.2 + 0.7 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def save_per_class_bars(values: Sequence[float], classes: Sequence[str], title: str, path: Path) -> Path:
    """One bar per class (e.g. test accuracy), with its value written on it."""
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(classes), 3.5))
    bars = ax.bar(range(len(classes)), values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_ylim(0, 1.08)
    ax.set_title(title)
    return _save(fig, path)


def save_embedding_map(points: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str, path: Path) -> Path:
    """A 2-D map (t-SNE) of samples coloured by class."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for label, name in enumerate(classes):
        mask = labels == label
        ax.scatter(points[mask, 0], points[mask, 1], s=4, color=colours(label), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def save_labelled_grid(images: np.ndarray, labels: Sequence[str], path: Path, columns: int = 8) -> Path:
    """Uint8 images (N, C, H, W) in a grid, each titled with its label (e.g. a query's prediction)."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, label in zip(axes.ravel(), images, labels):
        ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
        ax.set_title(label, fontsize=7)
    return _save(fig, path)
