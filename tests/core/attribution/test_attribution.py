"""Tests of manifpt_core.attribution: learning, determinism, metrics, early stopping, I/O."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from manifpt_core.attribution import (
    FitResult,
    FitSettings,
    SmallResNet,
    accuracy,
    confusion_matrix,
    fit_attributor,
    load_attributor,
    predict,
    predict_proba,
    save_attributor,
)
from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import channel_stats, resolve_device

SIDE = 16
SMALL = FitSettings(epochs=6, batch_size=64, lr=3e-3, patience=3, widths=(8, 16, 32))


def make_patterns(n_per_class: int, seed: int, noise: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """3 classes of 1x16x16 images: horizontal, vertical, diagonal gratings with random phase + noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    directions = [yy, xx, xx + yy]
    xs, ys = [], []
    for label, coord in enumerate(directions):
        phase = rng.uniform(0, 2 * np.pi, (n_per_class, 1, 1))
        img = np.sin(2 * np.pi * 3 * coord[None] + phase) + rng.normal(0, noise, (n_per_class, SIDE, SIDE))
        xs.append(img[:, None].astype(np.float32))
        ys.append(np.full(n_per_class, label, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def data():
    return make_patterns(150, seed=1), make_patterns(60, seed=2), make_patterns(100, seed=3)


@pytest.fixture(scope="module")
def trained(data):
    (xt, yt), (xv, yv), _ = data
    return fit_attributor(xt, yt, xv, yv, 3, SMALL, seed=0, progress=False)


def test_network_shapes_for_small_and_non_square_inputs():
    net = SmallResNet(in_channels=2, num_classes=5).eval()
    for h, w in [(8, 8), (9, 13), (28, 28)]:
        x = torch.randn(3, 2, h, w)
        assert net(x).shape == (3, 5)
        assert net.features(x).shape == (3, 64)


def test_learns_separable_task(data, trained):
    *_, (xs, ys) = data
    labels = predict(trained, xs)
    assert labels.dtype == np.int64 and labels.shape == ys.shape
    assert accuracy(ys, labels) >= 0.95
    labels2, feats = predict(trained, xs, return_features=True)
    np.testing.assert_array_equal(labels, labels2)
    assert feats.dtype == np.float32 and feats.shape == (len(xs), 32)
    proba = predict_proba(trained, xs)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), labels)


def test_standardization_uses_training_statistics(data, trained):
    (xt, _), *_ = data
    np.testing.assert_allclose(trained.mean, xt.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trained.std, xt.std(axis=(0, 2, 3)), rtol=1e-5)
    assert trained.mean.dtype == np.float32 and trained.std.dtype == np.float32
    mean, std = channel_stats(np.full((3, 2, 8, 8), 5.0, np.float32))
    np.testing.assert_allclose(mean, 5.0)
    np.testing.assert_allclose(std, 1e-6)  # floored, so constant channels don't divide by zero


def test_same_seed_gives_identical_results(data, trained):
    (xt, yt), (xv, yv), (xs, _) = data
    again = fit_attributor(xt, yt, xv, yv, 3, SMALL, seed=0, progress=False)
    assert again.history == trained.history
    assert again.state_dict.keys() == trained.state_dict.keys()
    for key, value in trained.state_dict.items():
        assert torch.equal(value, again.state_dict[key]), key
    np.testing.assert_array_equal(predict(again, xs), predict(trained, xs))


def test_early_stopping_keeps_best_epoch():
    # Heavy noise and a high learning rate make validation accuracy wobble, so stopping triggers.
    xt, yt = make_patterns(60, seed=4, noise=2.5)
    xv, yv = make_patterns(40, seed=5, noise=2.5)
    settings = FitSettings(epochs=15, batch_size=32, lr=1e-2, patience=2, widths=(8, 8, 8))
    result = fit_attributor(xt, yt, xv, yv, 3, settings, seed=3, progress=False)
    vals = [row["val_accuracy"] for row in result.history]
    assert result.history[int(np.argmax(vals))]["epoch"] == result.best_epoch
    assert result.best_val_accuracy == max(vals)
    assert [row["epoch"] for row in result.history] == list(range(1, len(vals) + 1))
    assert len(vals) < settings.epochs, "this seeded run is expected to stop early"
    assert len(vals) == result.best_epoch + settings.patience
    # The kept weights are those of the best epoch, not the last one.
    assert accuracy(yv, predict(result, xv)) == pytest.approx(result.best_val_accuracy)


@pytest.mark.parametrize("schedule", ["constant", "onecycle"])
def test_learning_rate_follows_the_schedule_batch_by_batch(data, monkeypatch, schedule):
    (xt, yt), (xv, yv), (xs, ys) = data
    rates = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    settings = FitSettings(epochs=5, batch_size=64, lr=3e-3, patience=5, widths=(8, 16, 32), schedule=schedule)
    result = fit_attributor(xt, yt, xv, yv, 3, settings, seed=0, progress=False)
    per_epoch = -(-len(xt) // settings.batch_size)
    assert len(rates) == settings.epochs * per_epoch
    if schedule == "constant":
        assert rates == [settings.lr] * len(rates)
    else:
        # Warm-up to lr over the first 30% of the steps, then annealing to almost nothing by the last one.
        peak = int(np.argmax(rates))
        assert rates[peak] == pytest.approx(settings.lr)
        assert abs(peak - 0.3 * len(rates)) <= 1
        assert rates[0] < settings.lr / 10 and rates[-1] < settings.lr / 1000
        assert all(a <= b for a, b in itertools.pairwise(rates[: peak + 1]))
        assert all(a >= b for a, b in itertools.pairwise(rates[peak:]))
    assert accuracy(ys, predict(result, xs)) >= 0.9  # learned either way (chance is 1/3)


def test_confusion_matrix_matches_brute_force():
    rng = np.random.default_rng(0)
    k = 4
    y_true, y_pred = rng.integers(0, k, 500), rng.integers(0, k, 500)
    expected = np.zeros((k, k), dtype=np.int64)
    for t in range(k):
        for p in range(k):
            expected[t, p] = np.sum((y_true == t) & (y_pred == p))
    cm = confusion_matrix(y_true, y_pred, k)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)
    assert np.trace(cm) / len(y_true) == pytest.approx(accuracy(y_true, y_pred))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "k", "match"),
    [
        (np.array([0, 1]), np.array([0]), 2, "lengths must match"),
        (np.array([0, 3]), np.array([0, 1]), 2, "out of range"),
        (np.array([0.0, 1.0]), np.array([0, 1]), 2, "integer dtype"),
    ],
)
def test_confusion_matrix_rejects_bad_labels(y_true, y_pred, k, match):
    with pytest.raises(InputError, match=match):
        confusion_matrix(y_true, y_pred, k)


def _corrupt(problem: str, data):
    """Training inputs with one ``problem``, as fit_attributor positional args."""
    (xt, yt), (xv, yv), _ = data
    if problem == "label out of range":
        return xt, np.where(yt == 2, 7, yt), xv, yv
    if problem == "class missing":
        return xt[yt != 2], yt[yt != 2], xv, yv
    if problem == "mismatched lengths":
        return xt, yt[:-1], xv, yv
    if problem == "wrong ndim":
        return xt[:, 0], yt, xv, yv
    if problem == "wrong dtype":
        return xt.astype(np.float64), yt, xv, yv
    if problem == "channel mismatch":
        return xt, yt, np.repeat(xv, 2, axis=1), yv
    bad = xt.copy()
    bad[0, 0, 0, 0] = np.nan
    return bad, yt, xv, yv


@pytest.mark.parametrize(
    ("problem", "match"),
    [
        ("label out of range", r"y_train has label\(s\) out of range \[0, 3\): e.g. 7"),
        ("class missing", r"class\(es\) \[2\] missing from y_train"),
        ("mismatched lengths", "y_train has 449 labels but there are 450 samples"),
        ("wrong ndim", r"x_train must be images \(N, C, H, W\) or vectors"),
        ("wrong dtype", "x_train must have dtype float32"),
        ("channel mismatch", "x_val has 2 channels"),
        ("nan", "x_train contains NaN"),
    ],
)
def test_fit_rejects_bad_inputs(data, problem, match):
    with pytest.raises(InputError, match=match):
        fit_attributor(*_corrupt(problem, data), num_classes=3, settings=SMALL, seed=0, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs.*0"),
        ({"batch_size": -5}, "batch_size.*-5"),
        ({"lr": 0.0}, "lr.*0.0"),
        ({"weight_decay": -1e-3}, "weight_decay"),
        ({"patience": 1.5}, "patience.*1.5"),
        ({"widths": (16, 0)}, "widths"),
        ({"schedule": "cosine"}, "schedule.*cosine"),
    ],
)
def test_settings_validation_names_field_and_value(kwargs, match):
    with pytest.raises(InputError, match=match):
        FitSettings(**kwargs)


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(InputError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            resolve_device("cuda")


def test_save_load_round_trip(tmp_path, data, trained):
    *_, (xs, _) = data
    path = save_attributor(trained, tmp_path / "attributor.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["attributor.pt"]  # no temp file left behind
    loaded = load_attributor(path)
    assert isinstance(loaded, FitResult)
    assert loaded.settings == trained.settings and loaded.history == trained.history
    assert (loaded.best_epoch, loaded.best_val_accuracy) == (trained.best_epoch, trained.best_val_accuracy)
    np.testing.assert_array_equal(loaded.mean, trained.mean)
    np.testing.assert_array_equal(predict(loaded, xs), predict(trained, xs))
    with pytest.raises(InputError, match="does not exist"):
        load_attributor(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="junk.pt.*corrupt"):
        load_attributor(tmp_path / "junk.pt")


def test_a_file_saved_before_precision_and_schedule_existed_loads_as_fp32_and_constant(tmp_path, data):
    (xt, yt), (xv, yv), (xs, _) = data
    settings = FitSettings(epochs=2, batch_size=64, lr=3e-3, widths=(8, 16, 32), precision="fp32")
    result = fit_attributor(xt, yt, xv, yv, 3, settings, seed=0, progress=False)
    path = save_attributor(result, tmp_path / "attributor.pt")
    payload = torch.load(path, weights_only=True)
    for key in ("precision", "schedule"):  # as such a file has its settings
        del payload["settings"][key]
    torch.save(payload, path)
    loaded = load_attributor(path)
    assert (loaded.settings.precision, loaded.settings.schedule) == ("fp32", "constant")
    np.testing.assert_array_equal(predict(loaded, xs), predict(result, xs))


def test_settings_coerce_numpy_scalars_and_lists():
    settings = FitSettings(epochs=np.int64(4), lr=np.float32(0.01), widths=[8, np.int64(16)])
    assert settings.epochs == 4 and type(settings.epochs) is int
    assert type(settings.lr) is float and settings.widths == (8, 16)
    hash(settings)  # still usable as a cache key


def make_vectors(n_per_class: int, seed: int, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """4 classes of vectors: Gaussian clusters whose means differ in a few coordinates only."""
    rng = np.random.default_rng(seed)
    means = np.zeros((4, dim))
    for label in range(4):
        means[label, 3 * label : 3 * label + 3] = 2.5  # pairwise gap 6.1 sigma: Bayes accuracy > 99%
    y = np.repeat(np.arange(4), n_per_class)
    x = (means[y] + rng.normal(size=(len(y), dim))).astype(np.float32)
    order = rng.permutation(len(y))
    return x[order], y[order]


def test_mlp_learns_separable_vectors_and_round_trips(tmp_path):
    (xt, yt), (xv, yv), (xe, ye) = make_vectors(300, 1), make_vectors(60, 2), make_vectors(100, 3)
    settings = FitSettings(epochs=15, batch_size=64, lr=3e-3, patience=5, mlp_hidden=(64, 32))
    result = fit_attributor(xt, yt, xv, yv, num_classes=4, settings=settings, seed=0, progress=False)
    labels, feats = predict(result, xe, return_features=True)
    assert accuracy(ye, labels) >= 0.95
    assert feats.shape == (len(xe), 32) and result.input_ndim == 2
    loaded = load_attributor(save_attributor(result, tmp_path / "mlp.pt"))
    np.testing.assert_array_equal(predict(loaded, xe), labels)
    with pytest.raises(InputError, match="trained on vectors"):
        predict(loaded, xe.reshape(len(xe), 1, 8, 8))


def test_vector_stats_are_per_feature():
    x = np.stack([np.arange(5, dtype=np.float32), np.full(5, 3.0, np.float32)], axis=1).repeat(3, axis=0)
    mean, std = channel_stats(x)
    np.testing.assert_allclose(mean, [2.0, 3.0])
    np.testing.assert_allclose(std, [np.sqrt(2.0), 1e-6])


def test_resnet50_attributor_starts_from_local_weights_and_round_trips(tmp_path):
    import torchvision

    from manifpt_core.attribution.networks import ResNet50Attributor

    torch.manual_seed(3)
    source = torchvision.models.resnet50(weights=None)
    torch.save(source.state_dict(), tmp_path / "r50.pt")
    net = ResNet50Attributor(in_channels=1, num_classes=3, weights=str(tmp_path / "r50.pt"))
    # the grey first convolution is the pretrained one averaged over RGB; deeper layers are the file's
    np.testing.assert_allclose(net.trunk.conv1.weight[:, 0].detach(), source.conv1.weight.mean(dim=1).detach(), rtol=1e-6)
    assert torch.equal(net.trunk.layer4[0].conv1.weight, source.layer4[0].conv1.weight)
    (xt, yt), (xv, yv) = make_patterns(20, seed=1), make_patterns(10, seed=2)
    settings = FitSettings(epochs=1, batch_size=16, network="resnet50", weights=str(tmp_path / "r50.pt"))
    result = fit_attributor(xt, yt, xv, yv, num_classes=3, settings=settings, seed=0, progress=False)
    labels, feats = predict(load_attributor(save_attributor(result, tmp_path / "a.pt")), xv, return_features=True)
    np.testing.assert_array_equal(labels, predict(result, xv))
    assert feats.shape == (len(xv), 2048)
    with pytest.raises(InputError, match=r"attributor.weights = '/nope.pt' does not exist"):
        ResNet50Attributor(1, 3, weights="/nope.pt")
    with pytest.raises(InputError, match="set attributor.network = 'resnet50'"):
        FitSettings(weights="/x.pt")
