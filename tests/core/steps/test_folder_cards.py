"""A model folder's card.json: its design factors, checked like a zoo card's, reach the generator summary and the
folder's version, and the card is never taken for an image."""

import json

import pytest

from manifpt_core import steps
from manifpt_core.config import load_settings
from manifpt_core.errors import InputError
from manifpt_core.sources import observe_folder, read_image_folder
from manifpt_core.sources.model_folders import FOLDER_CARD, read_folder_card
from manifpt_core.steps.generators import model_source_hash
from manifpt_core.store import Store

CARD = {"factors": {"loss": "hinge", "upsampling": "transposed_conv"}, "family": "my GAN", "notes": "from a paper"}


@pytest.fixture
def bench(tmp_path, config_writer):
    """The folder benchmark (real, alpha, beta) with a card.json in alpha, its settings and store."""
    config = config_writer(tmp_path)
    settings = load_settings("tiny", config)
    (tmp_path / "bench" / "alpha" / FOLDER_CARD).write_text(json.dumps(CARD))
    return tmp_path / "bench", settings, Store(tmp_path / "store", settings.dataset)


def test_the_cards_factors_land_in_the_generator_summary(bench):
    root, settings, store = bench
    alpha = steps.materialize_generator(store, settings, "alpha").summary
    assert alpha.kind == "folder" and alpha.factors == {"upsampling": "transposed_conv", "loss": "hinge"}
    assert alpha.card == {"factors": {"upsampling": "transposed_conv", "loss": "hinge"}, "family": "my GAN",
                          "notes": "from a paper"}
    beta = steps.materialize_generator(store, settings, "beta").summary
    assert beta.card is None and beta.factors == {}


def test_a_changed_card_changes_the_folders_version_and_observes_the_model_again(bench):
    root, settings, store = bench
    card_file = root / "alpha" / FOLDER_CARD
    first = steps.materialize_generator(store, settings, "alpha")
    version = model_source_hash(settings, "alpha")
    # The same card in another key order and layout is the same card.
    card_file.write_text(json.dumps({"notes": CARD["notes"], "family": CARD["family"],
                                     "factors": dict(reversed(CARD["factors"].items()))}, indent=4))
    assert model_source_hash(settings, "alpha") == version
    assert steps.materialize_generator(store, settings, "alpha").reused
    card_file.write_text(json.dumps({"factors": {"loss": "least_squares"}}))
    assert model_source_hash(settings, "alpha") != version
    again = steps.materialize_generator(store, settings, "alpha")
    assert not again.reused and again.summary.factors == {"loss": "least_squares"}
    assert again.content_hash != first.content_hash
    # Without a card the version is the images' hash, as for a folder that never had one.
    card_file.unlink()
    assert model_source_hash(settings, "alpha") == observe_folder(root / "alpha", root=root).content_hash


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"factors": {"loss": "hinge_v2"}}', r"unknown value 'hinge_v2' for design factor 'loss'"),
        ('{"factors": {"colour": "red"}}', r"unknown design factor 'colour'"),
        ('{"factors": {}, "seed": 3}', r"unknown key\(s\) 'seed'"),
        ('{"factors": ["hinge"]}', r"'factors' must be an object"),
        ('{"family": 7}', r"'family' must be a string"),
        ("[1, 2]", r"holds a JSON list, not an object"),
        ("{factors: }", r"is not valid JSON"),
    ],
)
def test_a_bad_card_names_the_file_and_the_fix(bench, text, match):
    root, settings, store = bench
    card_file = root / "alpha" / FOLDER_CARD
    card_file.write_text(text)
    with pytest.raises(InputError, match=match) as err:
        steps.materialize_generator(store, settings, "alpha")
    assert str(card_file) in str(err.value) and "Fix:" in str(err.value)
    with pytest.raises(InputError, match=match):
        model_source_hash(settings, "alpha")


def test_a_card_may_give_some_factors_and_a_folder_none(tmp_path):
    assert read_folder_card(tmp_path) is None
    (tmp_path / FOLDER_CARD).write_text('{"factors": {"skip": "residual", "downsampling": "avg_pool"}}')
    card = read_folder_card(tmp_path)
    assert list(card.factors.items()) == [("downsampling", "avg_pool"), ("skip", "residual")]  # DESIGN_FACTORS order
    assert card.to_dict() == {"factors": {"downsampling": "avg_pool", "skip": "residual"}}
    (tmp_path / FOLDER_CARD).write_text("{}")
    assert read_folder_card(tmp_path).factors == {}


def test_card_json_is_not_an_image(bench):
    root, settings, store = bench
    assert settings.on_bad_image == "error"
    loaded = read_image_folder(root / "alpha", on_bad_image="error")
    assert len(loaded.paths) == 60 and FOLDER_CARD not in loaded.paths and not loaded.skipped
    steps.ingest_real(store, settings)
    steps.materialize_generator(store, settings, "alpha")
    images = steps.ingest_generated(store, settings, "alpha").summary
    assert images.n_samples == 60 and images.skipped == []
