"""The factorial GAN family: each design factor changes the network or the loss, and the factorial profile's
design keeps the factors unconfounded."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score
from torch import nn

from manifpt_core.config import load_datasets
from manifpt_core.errors import InputError
from manifpt_core.names import NAME_RULE
from manifpt_core.zoo import ModelCard, TrainSettings, factorial, get_family

FAST = TrainSettings(steps=4, batch_size=16, lr=1e-3, latent_dim=8, width=8)


def _images(n: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)


def _card(**factors: str) -> ModelCard:
    return ModelCard(name="g", family="gan", factors=factors, train=FAST)


def _structure(net: nn.Module) -> list[tuple[str, object]]:
    """The generator's layers in order, with what tells interpolations apart."""
    return [(type(m).__name__, getattr(m, "mode", None)) for m in net.modules() if not list(m.children())]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_each_upsampling_builds_its_own_generator_of_the_image_shape(shape):
    c, size, _ = shape
    structures = {}
    for upsampling in factorial.UPSAMPLINGS:
        net = get_family("gan").configured(_card(upsampling=upsampling)).network(FAST, c, size)
        assert net(torch.randn(5, FAST.latent_dim)).shape == (5, *shape)
        structures[upsampling] = _structure(net)
    assert len({tuple(s) for s in structures.values()}) == len(factorial.UPSAMPLINGS)
    layers = {up: [name for name, _ in s] for up, s in structures.items()}
    assert layers["transposed_conv"].count("ConvTranspose2d") == 2
    assert layers["pixel_shuffle"].count("PixelShuffle") == 2 and "ConvTranspose2d" not in layers["pixel_shuffle"]
    assert [m for n, m in structures["nearest_conv"] if n == "Upsample"] == ["nearest", "nearest"]
    assert [m for n, m in structures["bilinear_conv"] if n == "Upsample"] == ["bilinear", "bilinear"]


def test_normalization_sets_the_generators_norm_layers():
    batch = factorial.Generator(8, 8, 1, 28, normalization="batch")
    layer = factorial.Generator(8, 8, 1, 28, normalization="layer")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in batch.modules()) == 2
    assert not any(isinstance(m, nn.GroupNorm) for m in batch.modules())
    groups = [m for m in layer.modules() if isinstance(m, nn.GroupNorm)]
    assert len(groups) == 2 and all(m.num_groups == 1 for m in groups)  # one group: layer norm over (C, H, W)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in layer.modules())
    # Layer norm normalises each sample on its own: a sample's image does not depend on the rest of the batch.
    layer.train()
    z = torch.randn(4, 8)
    torch.testing.assert_close(layer(z)[:1], layer(z[:1]))


def test_hinge_loss_matches_its_definition():
    fam = get_family("gan").configured(_card(loss="hinge"))
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.5])
    # D: mean relu(1 - real) = (0.5 + 0) / 2, mean relu(1 + fake) = (0 + 1.5) / 2
    assert fam.discriminator_loss(real, fake).item() == pytest.approx(0.25 + 0.75)
    assert fam.generator_loss(fake).item() == pytest.approx(0.75)
    ls = get_family("gan").configured(_card(loss="least_squares"))
    lsgan = get_family("lsgan")
    assert ls.discriminator_loss(real, fake).item() == pytest.approx(lsgan.discriminator_loss(real, fake).item())
    assert ls.generator_loss(fake).item() == pytest.approx(lsgan.generator_loss(fake).item())


def test_each_loss_trains_to_finite_and_different_weights():
    states = {}
    for loss in factorial.LOSSES:
        card = _card(loss=loss, upsampling="nearest_conv", normalization="layer")
        state = get_family("gan").train(_images(), card, progress=False)
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), loss
        states[loss] = state
    for a, b in itertools.combinations(factorial.LOSSES, 2):
        assert states[a].keys() == states[b].keys()  # the same generator ...
        assert any(not torch.equal(states[a][k], states[b][k]) for k in states[a]), (a, b)  # ... trained otherwise


def test_training_and_sampling_follow_the_cards_factors():
    card = _card(upsampling="pixel_shuffle", loss="hinge", normalization="layer")
    fam = get_family("gan")
    state = fam.train(_images(), card, progress=False)
    again = fam.train(_images(), card, progress=False)
    assert all(torch.equal(state[k], again[k]) for k in state)
    x = fam.sample(state, card, (1, 28, 28), n=6, seed=0)
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.uint8 and x.std() > 0
    np.testing.assert_array_equal(x, fam.sample(again, card, (1, 28, 28), n=6, seed=0))
    # The state of a pixel-shuffle generator does not load into the transposed-conv generator of another card.
    with pytest.raises(InputError, match="does not fit"):
        fam.sample(state, _card(upsampling="transposed_conv", normalization="layer"), (1, 28, 28), n=2, seed=0)


@pytest.mark.parametrize("factors", [{"normalization": "instance"}, {"upsampling": "none"}, {"loss": "elbo"},
                                     {"skip": "residual"}])
def test_a_factor_value_the_family_does_not_build_is_rejected(factors):
    with pytest.raises(InputError, match="'gan'"):
        ModelCard.from_dict({"name": "g", "family": "gan", "factors": factors})


def test_factorial_profile_is_the_full_grid_with_unconfounded_factors():
    (settings,) = load_datasets("factorial")
    zoo = settings.zoo
    assert len(zoo) == 16 and all(card.family == "gan" for card in zoo)
    assert all(NAME_RULE.fullmatch(card.name) for card in zoo) and len({c.name for c in zoo}) == 16
    table = [{k: card.factor(k) for k in ("upsampling", "loss", "normalization")} for card in zoo]
    pairs = Counter((row["upsampling"], row["loss"]) for row in table)
    assert set(pairs) == set(itertools.product(factorial.UPSAMPLINGS, factorial.LOSSES))
    assert set(pairs.values()) == {1}
    for a, b in itertools.combinations(("upsampling", "loss", "normalization"), 2):
        left, right = [row[a] for row in table], [row[b] for row in table]
        # A balanced design: every pair of values meets equally often, so the factors share no information.
        counts = Counter(zip(left, right))
        assert len(set(counts.values())) == 1 and len(counts) == len(set(left)) * len(set(right)), (a, b)
        assert normalized_mutual_info_score(left, right) == pytest.approx(0.0, abs=1e-12)
    assert Counter(row["normalization"] for row in table) == {"batch": 8, "layer": 8}
    assert zoo[0].name == "up-tconv_loss-ns_norm-bn"
