"""Embedding spaces against direct numpy computations."""

import numpy as np
import pytest

from manifpt_core.errors import InputError
from manifpt_core.spaces import get_space


@pytest.fixture
def images():
    return np.random.default_rng(1).integers(0, 256, size=(5, 3, 8, 6), dtype=np.uint8)


def test_freq_matches_a_direct_per_channel_fft(images):
    got = get_space("freq").embed(images)
    expected = np.empty((5, 3, 8, 6))
    for n in range(5):
        for c in range(3):
            f = np.fft.fftshift(np.fft.fft2(images[n, c] / 255.0))
            expected[n, c] = np.log(np.abs(f) + 1.0)
    assert got.dtype == np.float32 and got.shape == (5, 3 * 8 * 6)
    np.testing.assert_allclose(got, expected.reshape(5, -1), rtol=1e-5, atol=1e-5)


def test_freq_centres_the_dc_term():
    flat = np.full((1, 1, 8, 8), 255, dtype=np.uint8)
    spectrum = get_space("freq").embed(flat).reshape(8, 8)
    assert spectrum.argmax() == 4 * 8 + 4  # fftshift puts frequency 0 at (H//2, W//2)
    assert spectrum[4, 4] == pytest.approx(np.log(64 + 1.0), rel=1e-6)


def test_rgb_is_the_scaled_image(images):
    np.testing.assert_allclose(get_space("rgb").embed(images), images.reshape(5, -1) / 255.0, rtol=1e-6)


def test_embedding_is_batch_size_invariant(images):
    for name in ("rgb", "freq"):
        space = get_space(name)
        whole = space.embed(images)
        parts = np.concatenate([space.embed(images[i : i + 2]) for i in range(0, 5, 2)])
        np.testing.assert_array_equal(whole, parts)


def test_spaces_check_their_input():
    with pytest.raises(TypeError, match="uint8"):
        get_space("rgb").embed(np.zeros((2, 1, 4, 4), dtype=np.float32))
    with pytest.raises(InputError, match="valid spaces: freq, rgb, sl, ssl"):
        get_space("pixels")
