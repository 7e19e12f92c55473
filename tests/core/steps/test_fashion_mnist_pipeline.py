"""The embedded default, shrunk: Fashion-MNIST + the zoo (a few training steps) through every step."""

import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from manifpt_core import steps
from manifpt_core.config import PROFILES, settings_from_dict
from manifpt_core.store import Store, open_array


@pytest.mark.slow
def test_fashion_mnist_and_zoo_end_to_end(tmp_path):
    settings = settings_from_dict({**PROFILES["tiny"], "profile": "tiny", "n_reference": 300, "n_real_class": 100,
                                   "n_per_model": 100, "device": "cpu"})
    store = Store(tmp_path, settings.dataset)
    real = steps.ingest_real(store, settings)
    assert real.summary.image_shape == [1, 28, 28]
    assert real.summary.n_reference == 300 and real.summary.n_real_class == 100
    manifest = pq.read_table(store.paths.source_manifest("real")).to_pydict()
    assert all(p.startswith("fashion_mnist/train/") for p in manifest["path"][:300])
    assert all(p.startswith("fashion_mnist/test/") for p in manifest["path"][300:])
    assert set(manifest["label"]) <= set(range(10))
    models = [card.name for card in settings.zoo]
    for model in models:
        gen = steps.materialize_generator(store, settings, model)
        assert gen.summary.kind == "zoo" and (gen.path / "samples.png").is_file()
        images = steps.ingest_generated(store, settings, model)
        stored = open_array(images.path)
        assert stored.shape == (100, 1, 28, 28) and stored.dtype == np.uint8
    outcomes = steps.run_pipeline(store, settings, models)
    (report,) = [o for o in outcomes if o.step == "report"]
    assert outcomes[-1].step == "features" and outcomes[-1].summary.classes == ["real", "dcgan", "vae"]
    space_cards = {o.summary.space["space"]: o.summary for o in outcomes if o.step == "space"}
    assert space_cards["sl"].encoder["kind"] == "supervised" and space_cards["sl"].feature_dim == 256
    assert space_cards["ssl"].encoder["kind"] == "barlow_twins" and space_cards["rgb"].encoder is None
    data = json.loads((report.path / "report.json").read_text())
    assert data["classes"] == ["real", "dcgan", "vae"]
    # dcgan and vae differ in normalization and loss: NMI is defined there, n/a where they agree (skip)
    nmi = data["nmi"]["methods"]["rgb"]
    assert 0.0 <= nmi["loss"] <= 1.0 and nmi["skip"] is None
    assert set(data["sample_grids"]) == {"dcgan", "vae"}
    # Generators trained for 20 steps are far from real images; real images are the floor.
    assert [g["model"] for g in data["generators"]] == ["dcgan", "vae"]
    assert all(g["frechet_to_real"] > 2 * data["frechet_real_floor"] > 0 for g in data["generators"])
    assert "| dcgan | dcgan | 100 |" in (report.path / "report.md").read_text()
    # A changed zoo entry invalidates only its own outputs.
    changed = dataclasses.replace(settings, zoo=tuple(
        dataclasses.replace(c, seed=7) if c.name == "vae" else c for c in settings.zoo))
    assert steps.materialize_generator(store, changed, "dcgan").reused
    assert steps.ingest_generated(store, changed, "dcgan").reused
    assert not steps.materialize_generator(store, changed, "vae").reused
    assert not steps.ingest_generated(store, changed, "vae").reused
    assert all(steps.materialize_artifacts(store, changed, space, "dcgan").reused for space in settings.spaces)
    # Sampling is seeded by the card: the same generator gives the same images again.
    again = steps.ingest_generated(store, settings, "dcgan")
    assert again.reused
    fresh = Store(tmp_path / "again", settings.dataset)
    steps.ingest_real(fresh, settings)
    steps.materialize_generator(fresh, settings, "dcgan")
    assert steps.ingest_generated(fresh, settings, "dcgan").content_hash == again.content_hash


def test_class_subset_keeps_only_those_labels(tmp_path):
    settings = settings_from_dict({**PROFILES["tiny"], "profile": "tiny", "dataset": "shoes", "n_reference": 200,
                                   "n_real_class": 50, "source": {"classes": [5, 7, 9]}})
    store = Store(tmp_path, settings.dataset)
    steps.ingest_real(store, settings)
    labels = pq.read_table(store.paths.source_manifest("real")).column("label").to_pylist()
    assert set(labels) == {5, 7, 9} and len(labels) == 250
