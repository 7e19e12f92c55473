"""The generator zoo: cards, the family registry, training, sampling and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manifpt_core.errors import InputError
from manifpt_core.zoo import (
    DESIGN_FACTORS,
    ModelCard,
    TrainSettings,
    families,
    get_family,
    load_checkpoint,
    registry,
    save_checkpoint,
)
from manifpt_core.zoo.vae import VAE

FAST = TrainSettings(steps=3, batch_size=16, lr=1e-3, latent_dim=8, width=8)
SHAPE = (1, 28, 28)
# Every built-in family; each shared check below runs on all of them.
ZOO = ("beta_vae", "dcgan", "ddpm", "lsgan", "realnvp", "vae", "wgan_gp")


def _images(n: int = 64, shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> np.ndarray:
    """Blobs of random brightness and place on black, so the data has structure, not pure noise."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(8, h - 8, (2, n, 1, 1))
    r = rng.uniform(3, 8, (n, 1, 1))
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)) * rng.uniform(100, 255, (n, 1, 1))
    return np.repeat(blob[:, None], c, axis=1).round().astype(np.uint8)


def _card(family: str, seed: int = 0, **train) -> ModelCard:
    # FAST's sizes, but the family's beta: a beta_vae test card is still a beta-VAE.
    settings = TrainSettings(**{**FAST.to_dict(), "beta": get_family(family).default_train.beta, **train})
    return ModelCard(name=f"test-{family}", family=family, seed=seed, train=settings)


@pytest.fixture(scope="module")
def trained() -> dict[str, tuple[ModelCard, dict[str, torch.Tensor]]]:
    out = {}
    for family in ZOO:
        card = _card(family)
        out[family] = (card, get_family(family).train(_images(), card, progress=False))
    return out


def test_builtin_families_are_registered():
    assert set(ZOO) <= set(families())


def test_a_new_family_is_one_registered_class(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))

    @registry.register_family
    class BetaVAE(VAE):
        name = "beta_vae_test"
        default_train = TrainSettings(**{**FAST.to_dict(), "beta": 4.0})

    assert "beta_vae_test" in families()
    card = ModelCard.from_dict({"name": "b", "family": "beta_vae_test"})
    assert card.factor("loss") == "beta_elbo" and isinstance(get_family(card.family), BetaVAE)
    with pytest.raises(InputError, match="taken"):
        registry.register_family(type("Clash", (VAE,), {"name": "beta_vae_test"}))
    with pytest.raises(InputError, match="implement"):
        registry.register_family(type("Empty", (registry.Family,), {"name": "empty"}))


@pytest.mark.parametrize("family", ZOO)
def test_train_then_sample_gives_uint8_images(trained, family):
    card, state = trained[family]
    assert state and all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in state.values())
    x = get_family(family).sample(state, card, SHAPE, n=10, seed=0)
    assert x.shape == (10, *SHAPE) and x.dtype == np.uint8
    assert 0 <= x.min() <= x.max() <= 255
    assert x.std() > 0  # not a blank image


@pytest.mark.parametrize("family", ZOO)
def test_training_and_sampling_are_deterministic(trained, family):
    card, state = trained[family]
    before = torch.get_rng_state()
    again = get_family(family).train(_images(), card, progress=False)
    assert torch.equal(torch.get_rng_state(), before), "training must not change the caller's RNG state"
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    fam = get_family(family)
    a = fam.sample(state, card, SHAPE, n=12, seed=3)
    np.testing.assert_array_equal(a, fam.sample(again, card, SHAPE, n=12, seed=3))
    assert not np.array_equal(a, fam.sample(state, card, SHAPE, n=12, seed=4))


@pytest.mark.parametrize("family", ZOO)
def test_training_seed_changes_the_model(trained, family):
    card, state = trained[family]
    other = get_family(family).train(_images(), _card(family, seed=1), progress=False)
    assert any(not torch.equal(state[k], other[k]) for k in state)


@pytest.mark.parametrize("family", ZOO)
def test_samples_do_not_depend_on_batch_size_or_n(trained, family):
    card, state = trained[family]
    fam = get_family(family)
    full = fam.sample(state, card, SHAPE, n=10, seed=5, batch_size=512)
    np.testing.assert_array_equal(full, fam.sample(state, card, SHAPE, n=10, seed=5, batch_size=3))
    np.testing.assert_array_equal(full[:4], fam.sample(state, card, SHAPE, n=4, seed=5))
    assert fam.sample(state, card, SHAPE, n=0, seed=5).shape == (0, *SHAPE)


@pytest.mark.parametrize("family", ZOO)
def test_checkpoint_round_trip_samples_identically(trained, family, tmp_path):
    card, state = trained[family]
    path = save_checkpoint(state, tmp_path / "ckpt" / f"{card.name}.pt")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    loaded = load_checkpoint(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    fam = get_family(family)
    np.testing.assert_array_equal(
        fam.sample(state, card, SHAPE, n=8, seed=1), fam.sample(loaded, card, SHAPE, n=8, seed=1)
    )


def test_load_checkpoint_rejects_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="corrupt"):
        load_checkpoint(bad)
    torch.save({"step": 3}, bad)  # loads with weights_only, but is no state dict of tensors
    with pytest.raises(InputError, match="bad.pt.*state dict of tensors"):
        load_checkpoint(bad)


@pytest.mark.parametrize("family", ["dcgan", "lsgan", "wgan_gp"])
def test_batch_norm_families_need_two_images_a_batch(family):
    with pytest.raises(InputError, match="batch_size >= 2"):
        get_family(family).train(_images(4), _card(family, batch_size=1), progress=False)


@pytest.mark.parametrize("family", ZOO)
def test_rgb_32x32_images_work(family):
    shape = (3, 32, 32)
    card = _card(family, steps=2)
    fam = get_family(family)
    state = fam.train(_images(32, shape), card, progress=False)
    assert fam.sample(state, card, shape, n=5, seed=0).shape == (5, *shape)


@pytest.mark.parametrize("family", ZOO)
def test_sampling_with_the_wrong_shape_says_so(trained, family):
    card, state = trained[family]
    with pytest.raises(InputError, match="does not fit"):
        get_family(family).sample(state, card, (3, 28, 28), n=2, seed=0)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((4, 1, 30, 30), np.uint8),
        np.zeros((4, 2, 28, 28), np.uint8),
        np.zeros((4, 1, 28, 28), np.float32),
        np.zeros((0, 1, 28, 28), np.uint8),
    ],
)
def test_train_rejects_unsupported_images(images):
    with pytest.raises(InputError):
        get_family("vae").train(images, _card("vae"), progress=False)


# --- cards -----------------------------------------------------------------


def test_card_dict_round_trip_is_canonical_and_hashable():
    short = {"name": "vae-b4", "family": "vae", "seed": 7, "train": {"beta": 4, "steps": 10}}
    card = ModelCard.from_dict(short)
    d = card.to_dict()
    assert list(d) == ["name", "family", "factors", "seed", "train"]
    assert list(d["factors"]) == list(DESIGN_FACTORS)
    assert d["factors"]["loss"] == "beta_elbo" and d["train"]["beta"] == 4.0 and d["train"]["steps"] == 10
    assert ModelCard.from_dict(d) == card and hash(ModelCard.from_dict(d)) == hash(card)
    assert card.factor("upsampling") == "transposed_conv"


def test_missing_factors_and_settings_take_family_defaults():
    fam = get_family("dcgan")
    card = ModelCard.from_dict({"name": "short", "family": "dcgan", "factors": {"skip": "none"}})
    assert dict(card.factors) == fam.default_factors
    assert card.train == fam.default_train
    assert dict(ModelCard("direct", "dcgan").factors) == fam.default_factors


def test_unknown_factor_value_is_named():
    with pytest.raises(InputError, match="bicubic_conv") as err:
        ModelCard.from_dict({"name": "x", "family": "dcgan", "factors": {"upsampling": "bicubic_conv"}})
    assert "transposed_conv" in str(err.value)  # lists the valid values
    with pytest.raises(InputError, match="colour"):
        ModelCard(name="x", family="dcgan", factors={"colour": "red"})


@pytest.mark.parametrize("family", ZOO)
def test_every_factor_value_the_family_does_not_implement_is_rejected(family):
    fam = get_family(family)
    unsupported = [
        (key, value)
        for key, values in DESIGN_FACTORS.items()
        for value in values
        if value not in fam.supported_factors.get(key, (fam.default_factors[key],))
    ]
    assert unsupported
    for key, value in unsupported:
        with pytest.raises(InputError, match=family):
            ModelCard(name="x", family=family, factors={key: value})
    assert dict(ModelCard(name="x", family=family, factors=fam.default_factors).factors) == fam.default_factors


def test_factor_the_family_does_not_implement_is_rejected():
    with pytest.raises(InputError, match="nearest_conv"):
        ModelCard(name="x", family="dcgan", factors={"upsampling": "nearest_conv"})
    with pytest.raises(InputError, match="beta"):
        ModelCard.from_dict({"name": "x", "family": "vae", "factors": {"loss": "beta_elbo"}})


def test_unknown_keys_list_the_valid_keys():
    with pytest.raises(InputError, match="colour") as err:
        ModelCard.from_dict({"name": "x", "family": "vae", "colour": "red"})
    assert all(k in str(err.value) for k in ("name", "family", "factors", "seed", "train"))
    with pytest.raises(InputError, match="latent_dim"):
        ModelCard.from_dict({"name": "x", "family": "vae", "train": {"epochs": 3}})


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "has space", "a/b", "x" * 65, 3])
def test_bad_card_name_states_the_rule(name):
    with pytest.raises(InputError, match=r"\[a-z0-9\]\[a-z0-9_-\]\{0,63\}"):
        ModelCard(name=name, family="vae")


@pytest.mark.parametrize("bad", [{"steps": 0}, {"lr": -1.0}, {"batch_size": True}, {"beta": float("nan")}])
def test_bad_train_settings_are_rejected(bad):
    with pytest.raises(InputError):
        TrainSettings(**{**FAST.to_dict(), **bad})


def test_unknown_family_lists_the_families():
    with pytest.raises(InputError, match="dcgan") as err:
        get_family("stylegan9")
    assert "stylegan9" in str(err.value) and "vae" in str(err.value)
    with pytest.raises(InputError, match="vae"):
        ModelCard.from_dict({"name": "x", "family": "stylegan9"})
