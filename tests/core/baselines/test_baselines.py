"""The baselines' feature functions against hand counts and closed forms, and their classifiers."""

import numpy as np
import pytest

from manifpt_core.baselines import (
    BaselineSettings,
    BlurJpeg,
    azimuthal_average,
    cooccurrence,
    durall_features,
    dzanic_from_spectra,
    features_of,
    fit_classical,
    fit_power_law,
    intensity_histogram,
    mccloskey_features,
    power_spectrum,
    reduced_spectrum,
    saturation_counts,
)
from manifpt_core.baselines.spectrum import high_frequency_radii, radius_bins
from manifpt_core.errors import InputError


@pytest.mark.parametrize("shape", [(28, 28), (17, 24), (32, 32)])
def test_azimuthal_average_of_a_radially_symmetric_image_is_its_radial_profile(shape):
    r = radius_bins(shape)
    profile = np.random.default_rng(0).normal(size=r.max() + 1)
    image = profile[r]  # constant on every ring of integer radius
    np.testing.assert_allclose(azimuthal_average(image), profile, rtol=0, atol=1e-12)


def test_azimuthal_average_of_the_distance_map_stays_inside_each_bin():
    h = w = 28
    y, x = np.indices((h, w))
    distance = np.hypot(y - h // 2, x - w // 2)
    average = azimuthal_average(distance)
    k = np.arange(len(average))
    assert np.all((average >= k) & (average < k + 1))
    assert average[0] == 0.0 and len(average) == int(np.hypot(14, 14)) + 1


def test_power_spectrum_is_centred_with_the_squared_sum_at_zero_frequency():
    images = np.random.default_rng(1).integers(0, 256, (3, 2, 8, 10), dtype=np.uint8)
    spectra = power_spectrum(images)
    gray = images.astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(spectra[:, 4, 5], gray.sum(axis=(1, 2)) ** 2)
    np.testing.assert_allclose(spectra.sum(axis=(1, 2)), 80 * (gray**2).sum(axis=(1, 2)))  # Parseval


def test_durall_features_are_min_max_scaled_profiles():
    images = np.random.default_rng(2).integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    features = durall_features(images)
    assert features.shape == (5, 20) and features.dtype == np.float32
    np.testing.assert_allclose(features.min(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(features.max(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("exponent", [0.5, 2.0, 3.7])
def test_power_law_fit_recovers_the_exponent_and_levels(exponent):
    radii = np.arange(7, 15)
    power = np.stack([3.0 * radii ** -exponent, 0.01 * radii ** -exponent])
    b, start, end = fit_power_law(radii, power).T
    np.testing.assert_allclose(b, exponent, rtol=1e-10)
    np.testing.assert_allclose(start, np.log10([3.0 * 7.0 ** -exponent, 0.01 * 7.0 ** -exponent]), rtol=1e-10)
    np.testing.assert_allclose(end, np.log10([3.0 * 14.0 ** -exponent, 0.01 * 14.0 ** -exponent]), rtol=1e-10)


def test_dzanic_features_recover_the_decay_of_a_synthetic_power_law_spectrum():
    """A 2-D spectrum constant on integer-radius rings with value r^-b: the reduced spectrum is exactly the
    law, so the fit over its smoothed high-frequency part recovers b (smoothing only bends it slightly)."""
    exponent, n = 2.5, 64
    r = radius_bins((n, n)).astype(np.float64)
    spectrum = np.where(r > 0, np.maximum(r, 1.0) ** -exponent, 1.0)[None]
    reduced = reduced_spectrum(spectrum)[0]
    radii = np.arange(1, n // 2 + 1)
    np.testing.assert_allclose(reduced[radii], radii ** -exponent, rtol=1e-12)
    exact = dzanic_from_spectra(spectrum, fraction=0.5, smooth=1)[0]
    assert exact[0] == pytest.approx(exponent, rel=1e-5)
    assert dzanic_from_spectra(spectrum, fraction=0.5, smooth=3)[0][0] == pytest.approx(exponent, abs=0.05)


def test_high_frequency_radii_keep_two_points_at_least():
    assert high_frequency_radii(14, 0.5).tolist() == list(range(7, 15))
    assert high_frequency_radii(14, 0.01).tolist() == [13, 14]
    with pytest.raises(InputError, match="dzanic_fraction"):
        high_frequency_radii(14, 0.0)


def test_cooccurrence_matches_a_hand_count():
    image = np.array([[[[0, 128, 255], [255, 255, 0]]]], dtype=np.uint8)  # (1, 1, 2, 3)
    two = cooccurrence(image, levels=2)[0, 0]  # levels: 0..127 -> 0, 128..255 -> 1
    # row 0 pairs (0,1), (1,1); row 1 pairs (1,1), (1,0)
    np.testing.assert_array_equal(two, [[0, 1], [1, 2]])
    full = cooccurrence(image, levels=256)[0, 0]
    expected = np.zeros((256, 256))
    for a, b in [(0, 128), (128, 255), (255, 255), (255, 0)]:
        expected[a, b] += 1
    np.testing.assert_array_equal(full, expected)


def test_cooccurrence_is_per_channel_chunk_invariant_and_counts_every_pair():
    images = np.random.default_rng(3).integers(0, 256, (7, 3, 5, 6), dtype=np.uint8)
    whole = cooccurrence(images, 16, chunk=100)
    np.testing.assert_array_equal(whole, cooccurrence(images, 16, chunk=2))
    assert whole.shape == (7, 3, 16, 16)
    np.testing.assert_array_equal(whole.sum(axis=(2, 3)), np.full((7, 3), 5 * 5))
    q = images[4, 1].astype(int) * 16 // 256
    brute = np.zeros((16, 16))
    for row in q:
        for a, b in zip(row[:-1], row[1:]):
            brute[a, b] += 1
    np.testing.assert_array_equal(whole[4, 1], brute)


def test_saturation_counts_are_exact():
    rng = np.random.default_rng(4)
    images = rng.integers(1, 255, (4, 3, 9, 9), dtype=np.uint8)  # no 0 and no 255 yet
    planted_over = rng.integers(0, 40, (4, 3))
    planted_under = rng.integers(0, 40, (4, 3))
    for i in range(4):
        for c in range(3):
            cells = rng.permutation(81)
            flat = images[i, c].reshape(-1)
            flat[cells[: planted_over[i, c]]] = 255
            flat[cells[40 : 40 + planted_under[i, c]]] = 0
    counts = saturation_counts(images, under=0, over=255)
    np.testing.assert_array_equal(counts[..., 0], planted_under)
    np.testing.assert_array_equal(counts[..., 1], planted_over)
    features = mccloskey_features(images, 0, 255, bins=4).reshape(4, 3, 6)
    np.testing.assert_allclose(features[..., 0] * 81, planted_under, atol=1e-4)
    np.testing.assert_allclose(features[..., 1] * 81, planted_over, atol=1e-4)
    np.testing.assert_allclose(features[..., 2:].sum(axis=2), 1.0, atol=1e-6)


def test_saturation_thresholds_are_inclusive_settings():
    image = np.array([[[[0, 5, 6, 250, 251, 255]]]], dtype=np.uint8)
    np.testing.assert_array_equal(saturation_counts(image, under=5, over=251)[0, 0], [2, 2])
    with pytest.raises(InputError, match="mccloskey_under"):
        saturation_counts(image, under=200, over=100)


def test_intensity_histogram_bins_by_hand():
    image = np.array([[[[0, 63, 64, 200]]]], dtype=np.uint8)
    np.testing.assert_allclose(intensity_histogram(image, 4)[0, 0], [0.5, 0.25, 0.0, 0.25])


def test_blur_jpeg_augmentation_is_seeded_and_leaves_the_input_alone():
    batch = np.random.default_rng(5).random((6, 1, 16, 16)).astype(np.float32)
    before = batch.copy()
    identity = BlurJpeg(blur_prob=0.0, jpeg_prob=0.0)(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(identity, batch)
    always = BlurJpeg(blur_prob=1.0, jpeg_prob=1.0)
    a = always(batch, np.random.default_rng(1))
    b = always(batch, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(batch, before)
    assert a.shape == batch.shape and a.dtype == np.float32 and np.abs(a - batch).mean() > 0.01
    assert a.std(axis=(2, 3)).mean() < batch.std(axis=(2, 3)).mean()  # blur smooths noise


def test_classical_classifiers_separate_separable_features():
    rng = np.random.default_rng(6)
    y = np.repeat(np.arange(3), 50)
    x = rng.normal(size=(150, 4)) * [1, 1, 100, 0.01] + np.eye(3, 4)[y] * 6  # one feature on a wild scale
    for kind in ("linear-svm", "logistic", "knn"):
        assert (fit_classical(kind, x, y, seed=0, k=5).predict(x) == y).mean() > 0.95
    with pytest.raises(InputError, match="unknown classical classifier"):
        fit_classical("forest", x, y, seed=0)


def test_baseline_settings_validate_and_name_the_key():
    with pytest.raises(InputError, match="baselines.methods"):
        BaselineSettings(methods=("durall-lr", "fourier"))
    with pytest.raises(InputError, match="nataraj_levels"):
        BaselineSettings(nataraj_levels=1)
    settings = BaselineSettings(nataraj_levels=8)
    assert settings.params("nataraj") == {"levels": 8}
    assert settings.params("durall-svm") == {"c": 1.0}
    images = np.random.default_rng(7).integers(0, 256, (3, 1, 12, 12), dtype=np.uint8)
    assert features_of("nataraj", images, settings).shape == (3, 1, 8, 8)
    assert features_of("dzanic", images, settings).shape == (3, 3)
    assert features_of("mccloskey", images, settings).shape == (3, 18)
    np.testing.assert_allclose(features_of("raw-blurjpeg", images, settings) * 255, images)


def test_classical_classifiers_fit_on_one_blas_thread(blas_threads_in):
    from sklearn.pipeline import Pipeline

    counts = blas_threads_in(Pipeline)
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 40)
    for kind in ("linear-svm", "logistic", "knn"):
        fit_classical(kind, rng.normal(size=(120, 5)) + y[:, None], y, seed=0)
    assert counts == [1, 1, 1]
