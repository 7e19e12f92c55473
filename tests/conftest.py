"""Shared fixtures: a small GM-CIFAR10-style folder benchmark made on the fly."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_pngs(folder: Path, images: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img[0]).save(folder / f"{i:04d}.png")


def make_benchmark(root: Path, n_real: int = 180, n_model: int = 60, size: int = 12, seed: int = 0) -> Path:
    """Real images are smooth blobs in two classes (real/small, real/large by blob radius); model 'alpha'
    adds a checkerboard, 'beta' adds stripes: attributable."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]

    def blobs(n, radius=(2, 5)):
        cy, cx = rng.uniform(2, size - 2, (2, n, 1, 1))
        r = rng.uniform(*radius, (n, 1, 1))
        return 200.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)) + rng.uniform(0, 30, (n, size, size))

    checker = 60.0 * ((yy + xx) % 2)
    stripes = 60.0 * (xx % 3 == 0)
    to_u8 = lambda x: np.clip(x, 0, 255).astype(np.uint8)[:, None]  # noqa: E731
    write_pngs(root / "real" / "small", to_u8(blobs(n_real // 2, (1.5, 2.5))))
    write_pngs(root / "real" / "large", to_u8(blobs(n_real - n_real // 2, (3.5, 5))))
    write_pngs(root / "alpha", to_u8(blobs(n_model) + checker))
    write_pngs(root / "beta", to_u8(blobs(n_model) + stripes))
    return root


@pytest.fixture
def benchmark_root(tmp_path) -> Path:
    return make_benchmark(tmp_path / "bench")
