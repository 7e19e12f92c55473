"""Tests of manifpt_core.encoders: the Barlow Twins loss, preprocessing, training, embedding, weights, I/O."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
import torchvision
from torch.nn import functional as F

from manifpt_core.encoders import (
    Encoder,
    EncoderSettings,
    Preprocess,
    augment,
    barlow_twins_loss,
    build_encoder,
    load_encoder,
    save_encoder,
)
from manifpt_core.encoders.weights import IMAGENET_MEAN, IMAGENET_STD
from manifpt_core.errors import InputError

SIDE = 16
# Tiny network and few steps: each training below takes well under a second on one core.
SMALL = {"steps": 120, "batch_size": 64, "lr": 3e-3, "widths": (8, 16, 32), "feature_dim": 32, "projector_dim": 64}


pytestmark = pytest.mark.usefixtures("single_thread")


def make_stripes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey 16x16 images of horizontal (label 0) or vertical (label 1) stripes: random phase, amplitude,
    offset and noise, so that an untrained network's features barely tell the classes apart."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    labels = rng.integers(0, 2, n)
    coord = np.where(labels[:, None, None] == 0, yy[None], xx[None])
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    amplitude = rng.uniform(0.2, 1.0, (n, 1, 1))
    offset = rng.uniform(-0.5, 0.5, (n, 1, 1))
    img = amplitude * np.sin(2 * np.pi * 3 * coord + phase) + offset + rng.normal(0, 0.3, (n, SIDE, SIDE))
    return np.clip(127.5 + 80 * img, 0, 255).astype(np.uint8)[:, None], labels


def nearest_centroid_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    centroids = np.stack([train[y_train == k].mean(0) for k in (0, 1)])
    distances = ((test[:, None] - centroids[None]) ** 2).sum(-1)
    return float((distances.argmin(1) == y_test).mean())


@pytest.fixture(scope="module")
def stripes():
    return make_stripes(256, seed=1), make_stripes(200, seed=2)


@pytest.fixture(scope="module")
def sl_encoder(stripes):
    (x, y), _ = stripes
    return build_encoder("sl", EncoderSettings(**SMALL), x, y, seed=0, progress=False)


@pytest.fixture(scope="module")
def ssl_encoder(stripes):
    (x, _), _ = stripes
    return build_encoder("ssl", EncoderSettings(**{**SMALL, "steps": 40}), x, None, seed=0, progress=False)


# --- Barlow Twins loss and augmentation -------------------------------------------------------


def loop_barlow_loss(z1: np.ndarray, z2: np.ndarray, lambd: float, eps: float = 1e-5) -> float:
    """The paper's formula written out element by element, in float64."""
    n, d = z1.shape
    s1 = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)
    s2 = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(s1[b, i] * s2[b, j] for b in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c**2
    return loss


def whitened(n: int, d: int, seed: int) -> np.ndarray:
    """n x d data with mean 0 and biased covariance exactly the identity."""
    z = np.random.default_rng(seed).normal(size=(n, d))
    z -= z.mean(0)
    u, _, _ = np.linalg.svd(z, full_matrices=False)
    return u * np.sqrt(n)


@pytest.mark.parametrize("lambd", [0.0, 5e-3, 0.7])
def test_barlow_loss_matches_the_formula_written_out(lambd):
    rng = np.random.default_rng(0)
    z1 = rng.normal(size=(12, 5)) * rng.uniform(0.5, 3, 5) + rng.normal(size=5)
    z2 = 0.6 * z1 + rng.normal(size=(12, 5))
    got = barlow_twins_loss(torch.from_numpy(z1).float(), torch.from_numpy(z2).float(), lambd)
    assert got.dtype == torch.float32 and got.ndim == 0
    assert float(got) == pytest.approx(loop_barlow_loss(z1, z2, lambd), rel=1e-4)


def test_barlow_loss_is_zero_only_for_equal_decorrelated_views():
    z = torch.from_numpy(whitened(64, 8, seed=0)).float()
    assert float(barlow_twins_loss(z, z, 5e-3)) < 1e-4
    # Scaling and shifting a dimension does not matter: the views are standardized over the batch.
    assert float(barlow_twins_loss(3 * z + 1, z, 5e-3)) < 1e-4
    # Opposite views: every diagonal term is (1 - (-1))^2 = 4.
    assert float(barlow_twins_loss(z, -z, 5e-3)) == pytest.approx(4 * 8, rel=1e-3)
    # Redundant dimensions (all equal) are penalised off the diagonal: 8 * 7 pairs with c = 1.
    same = z[:, :1].repeat(1, 8)
    assert float(barlow_twins_loss(same, same, 0.5)) == pytest.approx(0.5 * 56, rel=1e-3)
    # Unrelated views (rows shuffled) leave the diagonal far from 1.
    shuffled = z[torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    assert float(barlow_twins_loss(z, shuffled, 5e-3)) > 4


def test_barlow_loss_rejects_mismatched_views():
    with pytest.raises(ValueError, match="equal shape"):
        barlow_twins_loss(torch.zeros(4, 3), torch.zeros(4, 2), 5e-3)


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_keeps_shape_and_range_and_is_seeded_per_sample(channels):
    x = torch.rand(32, channels, SIDE, SIDE)
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    c = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    # Every sample gets its own parameters: identical inputs give different views.
    same = augment(x[:1].repeat(8, 1, 1, 1), torch.Generator().manual_seed(0))
    assert len({tuple(v.flatten().tolist()) for v in same}) == 8


# --- Preprocessing ------------------------------------------------------------------------------


def test_preprocess_normalizes_a_known_image():
    images = np.full((2, 1, 4, 6), 51, dtype=np.uint8)  # 51 / 255 = 0.2
    images[1] = 255
    x = Preprocess(mean=(0.5,), std=(0.25,)).apply(images)
    assert x.dtype == torch.float32 and x.shape == (2, 1, 4, 6)
    torch.testing.assert_close(x[0], torch.full((1, 4, 6), -1.2))
    torch.testing.assert_close(x[1], torch.full((1, 4, 6), 2.0))


def test_preprocess_replicates_grey_and_normalizes_each_channel():
    images = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    pre = Preprocess(channels=3, mean=(0.0, 0.5, 0.0), std=(1.0, 1.0, 0.5))
    x = pre.apply(images)
    grey = torch.from_numpy(images[:, 0]).float() / 255
    assert x.shape == (3, 3, 8, 8)
    torch.testing.assert_close(x[:, 0], grey)
    torch.testing.assert_close(x[:, 1], grey - 0.5)
    torch.testing.assert_close(x[:, 2], grey * 2)


def test_preprocess_resizes_with_the_named_filter():
    images = np.zeros((1, 1, 4, 4), dtype=np.uint8)
    images[0, 0, :2, :2] = 255  # top-left quarter white
    area = Preprocess(size=(2, 2), filter="area", mean=(0.0,), std=(1.0,)).apply(images)
    torch.testing.assert_close(area[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    for name in ("nearest", "bilinear", "bicubic"):
        up = Preprocess(size=(12, 20), filter=name).apply(images)
        assert up.shape == (1, 1, 12, 20)
        assert float(up.min()) >= -1.0 and float(up.max()) <= 1.0  # clamped to [0, 1] before normalizing
    nearest = Preprocess(size=(8, 8), filter="nearest", mean=(0.0,), std=(1.0,)).apply(images)
    assert float(nearest.sum()) == 16.0  # each white pixel becomes a 2x2 block


def test_preprocess_settings_round_trip_and_checks():
    pre = Preprocess(size=(32, 24), filter="bicubic", channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    settings = json.loads(json.dumps(pre.settings()))
    assert Preprocess.from_settings(settings) == pre
    assert Preprocess.from_settings(Preprocess().settings()) == Preprocess()
    with pytest.raises(InputError, match="another version"):
        Preprocess.from_settings({**settings, "resize": "pil-v0"})
    with pytest.raises(InputError, match="one value per output channel"):
        Preprocess(channels=3)
    with pytest.raises(InputError, match="filter"):
        Preprocess(filter="lanczos")
    with pytest.raises(InputError, match="3 channel"):
        Preprocess(channels=1).apply(np.zeros((1, 3, 8, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        Preprocess().apply(np.zeros((1, 1, 8, 8), dtype=np.float32))


# --- Settings -----------------------------------------------------------------------------------


def test_settings_check_every_field_and_name_the_config_key():
    assert EncoderSettings(image_size=[32, 32], widths=[8, 16]).image_size == (32, 32)
    assert EncoderSettings(lr=1) == EncoderSettings(lr=1.0)
    with pytest.raises(InputError, match=r"encoders\.<space>\.steps"):
        EncoderSettings(steps=0)
    with pytest.raises(InputError, match=r"encoders\.ssl\.barlow_lambda"):
        EncoderSettings.from_dict("ssl", {"barlow_lambda": -1})
    with pytest.raises(InputError, match=r"encoders\.sl\.image_size"):
        EncoderSettings.from_dict("sl", {"image_size": [4, 4]})
    with pytest.raises(InputError, match=r"unknown key.*encoders\.sl.*valid keys"):
        EncoderSettings.from_dict("sl", {"step": 10})
    for bad in ({"batch_size": 1}, {"lr": float("nan")}, {"steps": True}, {"weights": ""}, {"resize_filter": "x"}):
        with pytest.raises(InputError, match=f"encoders.sl.{next(iter(bad))}"):
            EncoderSettings.from_dict("sl", bad)


def test_settings_are_json_safe_and_only_hold_what_changes_the_encoder():
    trained = EncoderSettings().settings()
    assert json.loads(json.dumps(trained)) == trained
    assert trained["origin"] == "trained" and trained["steps"] == 400 and "weights" not in trained
    assert EncoderSettings(steps=10).settings() != trained
    loaded = EncoderSettings(weights="a/resnet50.pth").settings()
    assert loaded == {"origin": "weights", "arch": "resnet50", "image_size": [224, 224], "resize_filter": "bilinear"}
    assert EncoderSettings(weights="b.pth", steps=10).settings() == loaded


# --- Training -----------------------------------------------------------------------------------


def test_supervised_encoder_separates_the_classes(stripes, sl_encoder):
    (x, y), (x_test, y_test) = stripes
    accuracy = nearest_centroid_accuracy(sl_encoder.embed(x), y, sl_encoder.embed(x_test), y_test)
    assert accuracy >= 0.9
    # The untrained network (one step) does not: the features were learned.
    barely = build_encoder("sl", EncoderSettings(**{**SMALL, "steps": 1}), x, y, seed=0, progress=False)
    assert nearest_centroid_accuracy(barely.embed(x), y, barely.embed(x_test), y_test) < accuracy - 0.2
    card = sl_encoder.card
    assert card["kind"] == "supervised" and card["origin"] == "trained" and card["feature_dim"] == 32
    assert card["training"]["classes"] == [0, 1] and card["training"]["history"][-1]["accuracy"] > 0.9
    assert json.loads(json.dumps(card)) == card


def test_supervised_encoder_takes_any_integer_labels(stripes):
    (x, y), _ = stripes
    encoder = build_encoder("sl", EncoderSettings(**{**SMALL, "steps": 2}), x, np.where(y == 0, 5, 9), progress=False)
    assert encoder.card["training"]["classes"] == [5, 9]


def test_barlow_twins_training_lowers_its_loss(ssl_encoder):
    losses = [row["loss"] for row in ssl_encoder.card["training"]["history"]]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0]
    card = ssl_encoder.card
    assert card["kind"] == "barlow_twins" and card["training"]["augmentation"]["crop_scale"] == [0.35, 1.0]


def test_trained_preprocess_uses_the_training_images_statistics(stripes, sl_encoder):
    (x, _), _ = stripes
    pre = sl_encoder.preprocess
    assert pre.size is None and pre.channels == 1
    assert pre.mean[0] == pytest.approx(x.mean() / 255, rel=1e-5)
    assert pre.std[0] == pytest.approx(x.std() / 255, rel=1e-4)
    assert sl_encoder.card["preprocess"] == pre.settings()


def test_sl_without_labels_says_what_to_do(stripes):
    (x, _), _ = stripes
    with pytest.raises(InputError, match=r"class labels.*encoders\.sl\.weights"):
        build_encoder("sl", EncoderSettings(**SMALL), x, None, progress=False)
    with pytest.raises(InputError, match="unknown learned space"):
        build_encoder("rgb", EncoderSettings(**SMALL), x, None, progress=False)


def test_training_is_deterministic_for_a_seed_and_leaves_the_callers_rng_alone(stripes, ssl_encoder):
    (x, _), _ = stripes
    settings = EncoderSettings(**{**SMALL, "steps": 40})
    torch.manual_seed(123)
    again = build_encoder("ssl", settings, x, None, seed=0, progress=False)
    after = torch.rand(3)
    torch.manual_seed(123)
    np.testing.assert_array_equal(again.embed(x[:50]), ssl_encoder.embed(x[:50]))
    assert again.card["training"]["history"] == ssl_encoder.card["training"]["history"]
    torch.testing.assert_close(torch.rand(3), after, rtol=0, atol=0)
    other = build_encoder("ssl", settings, x, None, seed=1, progress=False)
    assert not np.allclose(other.embed(x[:50]), ssl_encoder.embed(x[:50]))


# --- Embedding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["sl_encoder", "ssl_encoder"])
def test_embed_does_not_depend_on_batch_size(request, stripes, which):
    encoder = request.getfixturevalue(which)
    (x, _), _ = stripes
    x = x[:37]
    whole = encoder.embed(x, batch_size=256)
    assert whole.dtype == np.float32 and whole.shape == (37, encoder.feature_dim)
    for batch_size in (1, 5):
        np.testing.assert_allclose(encoder.embed(x, batch_size=batch_size), whole, rtol=1e-5, atol=1e-5)
    assert encoder.embed(x[:0]).shape == (0, encoder.feature_dim)


def test_embed_checks_its_input(sl_encoder):
    with pytest.raises(TypeError, match="uint8"):
        sl_encoder.embed(np.zeros((2, 1, SIDE, SIDE), dtype=np.float32))
    with pytest.raises(InputError, match=r"trained on 16x16 images.*image_size"):
        sl_encoder.embed(np.zeros((2, 1, 20, 20), dtype=np.uint8))
    with pytest.raises(InputError, match="batch_size"):
        sl_encoder.embed(np.zeros((2, 1, SIDE, SIDE), dtype=np.uint8), batch_size=0)


# --- ResNet-50 weights and persistence ----------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A random ResNet-50 state_dict (fc included, as torchvision saves it) and the network it came from."""
    # Not seed 0: build_encoder draws the network's (overwritten) initial weights with the encoder
    # seed, so weights from seed 0 would pass even if the file were never read.
    torch.manual_seed(7)
    net = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():  # buffers too must come from the file
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(net.state_dict(), path)
    return path, net


def small_rgb_settings(path) -> EncoderSettings:
    return EncoderSettings(weights=str(path), image_size=(32, 32))


def test_resnet50_weights_load_and_embed_to_2048(resnet_file, stripes):
    path, net = resnet_file
    (x, _), _ = stripes
    encoder = build_encoder("sl", small_rgb_settings(path), None, None, progress=False)
    features = encoder.embed(x[:3])
    assert features.shape == (3, 2048) and features.dtype == np.float32 and encoder.feature_dim == 2048
    # The same numbers as the network the file came from, on the same preprocessing.
    grey = torch.from_numpy(x[:3]).float() / 255
    rgb = F.interpolate(grey, size=(32, 32), mode="bilinear", antialias=True).expand(-1, 3, -1, -1)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    net.fc = torch.nn.Identity()
    with torch.inference_mode():
        expected = net((rgb - mean) / std).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    card = encoder.card
    assert card["origin"] == "weights" and card["arch"] == "resnet50" and card["kind"] == "supervised"
    assert card["weights"] == {"file": "resnet50.pth", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert card["preprocess"]["channels"] == 3 and card["preprocess"]["size"] == [32, 32]
    assert EncoderSettings(weights=str(path)).settings()["image_size"] == [224, 224]


def test_wrapped_checkpoint_with_module_prefixes_loads(resnet_file, tmp_path, stripes):
    path, net = resnet_file
    (x, _), _ = stripes
    state = {f"module.{k}": v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    wrapped = tmp_path / "ddp.pt"
    torch.save({"state_dict": state, "epoch": 3}, wrapped)
    a = build_encoder("ssl", small_rgb_settings(wrapped), None, None, progress=False)
    b = build_encoder("ssl", small_rgb_settings(path), None, None, progress=False)
    assert a.card["kind"] == "barlow_twins"
    torch.testing.assert_close(a.network.state_dict()["layer4.2.bn3.running_var"],
                               net.state_dict()["layer4.2.bn3.running_var"], rtol=0, atol=0)
    np.testing.assert_array_equal(a.embed(x[:2]), b.embed(x[:2]))


def test_bad_weights_files_name_the_key_and_the_file(resnet_file, tmp_path):
    _, net = resnet_file
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(InputError, match=r"encoders\.sl\.weights = '.*nowhere\.pth' does not exist"):
        build_encoder("sl", EncoderSettings(weights=str(missing)), None, None)
    wrong_keys = tmp_path / "wrong_keys.pth"
    torch.save({"encoder.conv.weight": torch.zeros(3)}, wrong_keys)
    with pytest.raises(InputError, match=r"encoders\.ssl\.weights = '.*wrong_keys\.pth'.*missing.*unexpected"):
        build_encoder("ssl", EncoderSettings(weights=str(wrong_keys)), None, None)
    wrong_shape = tmp_path / "wrong_shape.pth"
    state = dict(net.state_dict())
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    torch.save(state, wrong_shape)
    with pytest.raises(InputError, match=r"wrong_shape\.pth.*1 wrong shape \(e\.g\. conv1\.weight"):
        build_encoder("sl", EncoderSettings(weights=str(wrong_shape)), None, None)
    not_torch = tmp_path / "notes.txt"
    not_torch.write_text("not weights")
    with pytest.raises(InputError, match=r"notes\.txt.*does not load"):
        build_encoder("sl", EncoderSettings(weights=str(not_torch)), None, None)


@pytest.mark.parametrize("which", ["sl_encoder", "ssl_encoder", "resnet"])
def test_save_load_round_trip_gives_identical_embeddings(request, resnet_file, stripes, tmp_path, which):
    (x, _), _ = stripes
    if which == "resnet":
        encoder = build_encoder("sl", small_rgb_settings(resnet_file[0]), None, None, progress=False)
    else:
        encoder = request.getfixturevalue(which)
    path = tmp_path / "encoder.pt"
    save_encoder(encoder, path)
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.pt"]  # no temporary file left behind
    torch.load(path, weights_only=True)
    loaded = load_encoder(path)
    assert isinstance(loaded, Encoder) and not loaded.network.training
    assert loaded.space == encoder.space and loaded.card == encoder.card and loaded.preprocess == encoder.preprocess
    np.testing.assert_array_equal(loaded.embed(x[:20]), encoder.embed(x[:20]))


def test_load_encoder_refuses_other_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_encoder(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(InputError, match="not a manifpt encoder file"):
        load_encoder(other)
