"""Generator sanity: how far a source's images are from held-out real images, in a fixed feature space.

A broken generator (noise, mode collapse) would be trivially "attributable";
this distance makes it visible in the metadata and the report instead.
The space is the pixel-PCA of the real reference images (see
``manifpt_core.metrics.frechet``); the held-out real images are the real
class, which no generator trained on.
"""

from __future__ import annotations

import numpy as np

from manifpt_core.metrics import PCA_DIM, fit_pca, pixel_pca_frechet

FD_SPACE = f"pixel_pca{PCA_DIM}"


def frechet_to_real(images: np.ndarray, reference: np.ndarray, held_out: np.ndarray) -> float:
    """Fréchet distance of ``images`` to the held-out real images, in the reference's pixel-PCA space."""
    return pixel_pca_frechet(images, held_out, fit_pca(reference, PCA_DIM))


def real_floor(reference: np.ndarray, held_out: np.ndarray, seed: int = 0) -> float:
    """The same distance for real images (a reference draw of the held-out size): what 'perfect' scores."""
    rng = np.random.default_rng(seed)
    draw = reference[np.sort(rng.permutation(len(reference))[: len(held_out)])]
    return frechet_to_real(draw, reference, held_out)
