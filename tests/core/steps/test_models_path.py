"""models_path: a folder of model folders beside any real source, found, versioned and ingested like the others."""

import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from manifpt_core import steps
from manifpt_core.config import settings_from_dict
from manifpt_core.errors import InputError
from manifpt_core.steps.generators import configured_models, model_folder, model_source_hash
from manifpt_core.store import Store, open_array
from manifpt_core.store.hashing import rows_hash


def small_settings(models_path=None, **overrides):
    """Tiny settings of dataset ``bench`` reading model folders from ``models_path`` when given (and ``overrides``)."""
    data = {
        "profile": "test",
        "dataset": "bench",
        "n_reference": 120,
        "n_real_class": 60,
        "zoo": [],
        "chunk_rows": 16,
        "block_rows": 32,
        "device": "cpu",
    }
    if models_path is not None:
        data["models_path"] = str(models_path)
    data.update(overrides)
    return settings_from_dict(data)


def folder_source(root):
    return {"source": {"kind": "folder", "path": str(root)}}


def noise(n, size, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 1, size, size), dtype=np.uint8)


@pytest.fixture
def bench_and_models(tmp_path, benchmark_factory, png_writer):
    """A folder benchmark (real, alpha, beta; 12x12 grey) and a models folder holding ``gamma`` (30 images)."""
    root = benchmark_factory(tmp_path / "bench")
    models = tmp_path / "models"
    gamma = noise(30, 12, seed=1)
    png_writer(models / "gamma", gamma)
    return root, models, gamma


def test_a_models_path_folder_is_a_model_beside_the_benchmark(bench_and_models):
    root, models, _ = bench_and_models
    settings = small_settings(models, **folder_source(root))
    assert configured_models(settings) == ["alpha", "beta", "gamma"]
    assert model_folder(settings, "gamma") == models / "gamma"
    assert model_folder(settings, "alpha") == root / "alpha"
    # without models_path the extra model is unknown, and the error names the three ways to add it
    plain = small_settings(**folder_source(root))
    assert configured_models(plain) == ["alpha", "beta"]
    with pytest.raises(InputError, match=r"'gamma' is neither a zoo entry.*zoo.*<source\.path>/gamma/.*"
                                         r"<models_path>/gamma/"):
        model_folder(plain, "gamma")


def test_a_name_in_two_places_is_an_error_naming_both(bench_and_models, png_writer):
    root, models, gamma = bench_and_models
    zoo = [{"name": "gamma", "family": "dcgan", "seed": 0}]
    with pytest.raises(InputError, match=rf"'gamma' is both a zoo entry .* the folder {re.escape(str(models / 'gamma'))}"):
        configured_models(small_settings(models, **folder_source(root), zoo=zoo))
    png_writer(models / "alpha", gamma)
    settings = small_settings(models, **folder_source(root))
    both = (rf"'alpha' has two folders: {re.escape(str(root / 'alpha'))} \(under source\.path\) and "
            rf"{re.escape(str(models / 'alpha'))} \(under models_path\)")
    with pytest.raises(InputError, match=both):
        configured_models(settings)
    with pytest.raises(InputError, match=both):
        model_folder(settings, "gamma")  # the set of model folders is inconsistent, whatever the model asked


def test_an_extra_model_is_ingested_from_its_folder(bench_and_models, tmp_path):
    root, models, gamma = bench_and_models
    settings = small_settings(models, **folder_source(root))
    store = Store(tmp_path / "store", "bench")
    steps.ingest_real(store, settings)
    generator = steps.materialize_generator(store, settings, "gamma")
    assert generator.summary.kind == "folder" and generator.summary.folder == str(models / "gamma")
    assert generator.content_hash == model_source_hash(settings, "gamma")
    ingested = steps.ingest_generated(store, settings, "gamma")
    manifest = pq.read_table(store.paths.source_manifest("gamma")).to_pydict()
    assert manifest["path"] == [f"gamma/{i:04d}.png" for i in range(30)]
    assert manifest["source"] == ["gamma"] * 30 and manifest["row"] == list(range(30))
    assert set(manifest["split"]) <= {"train", "val", "test"}
    assert set(manifest["channels"]) == {1} and set(manifest["height"]) == set(manifest["width"]) == {12}
    assert manifest["content_hash"] == rows_hash(gamma)
    np.testing.assert_array_equal(open_array(ingested.path)[:], gamma)


@pytest.fixture(scope="module")
def fashion_mnist(tmp_path_factory):
    """A store whose real images are a small Fashion-MNIST draw (the embedded default), ingested once."""
    tmp = tmp_path_factory.mktemp("fmnist")
    settings = small_settings(n_reference=200, n_real_class=60, chunk_rows=64, block_rows=128)
    assert settings.source.kind == "fashion_mnist"
    store = Store(tmp / "store", "bench")
    steps.ingest_real(store, settings)
    return tmp, store


def test_a_generator_beside_fashion_mnist_is_ingested(fashion_mnist, png_writer):
    tmp, store = fashion_mnist
    mine = noise(40, 28, seed=2)
    png_writer(tmp / "my_models" / "mygan", mine)
    settings = small_settings(tmp / "my_models", n_reference=200, n_real_class=60, chunk_rows=64, block_rows=128)
    assert configured_models(settings) == ["mygan"]
    assert steps.materialize_generator(store, settings, "mygan").summary.kind == "folder"
    ingested = steps.ingest_generated(store, settings, "mygan")
    assert ingested.summary.image_shape == [1, 28, 28]
    np.testing.assert_array_equal(open_array(ingested.path)[:], mine)
    assert pq.read_table(store.paths.source_manifest("mygan")).column("path").to_pylist()[0] == "mygan/0000.png"


def test_images_of_another_size_than_fashion_mnist_stop_ingestion_naming_the_model(fashion_mnist, png_writer):
    tmp, store = fashion_mnist
    png_writer(tmp / "small_models" / "smallgan", noise(10, 14, seed=3))
    settings = small_settings(tmp / "small_models", n_reference=200, n_real_class=60, chunk_rows=64,
                              block_rows=128)
    assert configured_models(settings) == ["smallgan"]
    steps.materialize_generator(store, settings, "smallgan")
    with pytest.raises(InputError, match=r"'smallgan' images are \(1, 14, 14\).*real images are \(1, 28, 28\)"):
        steps.ingest_generated(store, settings, "smallgan")
    assert not store.paths.source_manifest("smallgan").exists()
