"""Observing a dataset's sources through the store's file hash cache gives the versions of reading every file."""


import pytest

from manifpt_core.config import load_settings
from manifpt_core.names import REAL
from manifpt_core.steps.generators import materialize_generator, model_source_hash
from manifpt_core.steps.ingest import ingest_real, real_source_hash
from manifpt_core.steps.observe import observe_sources
from manifpt_core.store import Store


@pytest.fixture
def bench(tmp_path, config_writer, file_ager) -> tuple[Store, object]:
    """The store and settings of the small folder benchmark (real, alpha, beta), its files an hour old."""
    config = config_writer(tmp_path)
    file_ager(tmp_path / "bench")
    settings = load_settings("tiny", config)
    return Store(tmp_path / "home" / "store", settings.dataset), settings


def versions(observed) -> dict[str, str]:
    return {source: o.content_hash for source, o in observed.items()}


def test_observing_through_the_cache_gives_the_versions_of_reading_every_file(bench, file_reads):
    store, settings = bench
    expected = {REAL: real_source_hash(settings), "alpha": model_source_hash(settings, "alpha"),
                "beta": model_source_hash(settings, "beta")}  # no cache: every file read
    file_reads.clear()
    first = observe_sources(store, settings)
    assert versions(first) == expected and [o.n_read for o in first.values()] == [180, 60, 60] == \
        [o.n_files for o in first.values()]
    second = observe_sources(store, settings)
    assert versions(second) == expected and [o.n_read for o in second.values()] == [0, 0, 0]
    assert len(file_reads) == 300
    deep = observe_sources(store, settings, deep=True)
    assert versions(deep) == expected and [o.n_read for o in deep.values()] == [180, 60, 60]


def test_the_steps_version_their_inputs_through_the_store_cache(bench, file_reads):
    store, settings = bench
    observe_sources(store, settings)
    file_reads.clear()
    ingest_real(store, settings)
    generator = materialize_generator(store, settings, "alpha")
    assert file_reads == [] and generator.content_hash == model_source_hash(settings, "alpha")


def test_fashion_mnist_idx_files_and_zoo_cards(tmp_path, file_reads):
    settings = load_settings("demo")  # the Debian Fashion-MNIST files and the demo's zoo
    store = Store(tmp_path / "store", settings.dataset)
    first, second = observe_sources(store, settings), observe_sources(store, settings)
    assert versions(first) == versions(second)
    assert first[REAL].content_hash == real_source_hash(settings)
    assert (first[REAL].n_files, first[REAL].n_read, second[REAL].n_read) == (4, 4, 0)
    zoo = [card.name for card in settings.zoo]
    assert zoo and all((second[m].n_files, second[m].n_read) == (0, 0) for m in zoo)
    assert all(second[m].content_hash == model_source_hash(settings, m) for m in zoo)
