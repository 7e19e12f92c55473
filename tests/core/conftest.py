"""Fixtures of the core tests."""

from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from manifpt_core import steps
from manifpt_core.store import file_hashes


def _build_rgb_store(store, settings, models: list[str]) -> None:
    """Every step up to the artifacts, in the ``rgb`` space, for the real images and ``models``."""
    steps.ingest_real(store, settings)
    for model in models:
        steps.materialize_generator(store, settings, model)
        steps.ingest_generated(store, settings, model)
    steps.materialize_space(store, settings, "rgb")
    for source in ["real", *models]:
        steps.embed_source(store, settings, "rgb", source)
    steps.build_index(store, settings, "rgb")
    for source in ["real", *models]:
        steps.materialize_artifacts(store, settings, "rgb", source)


@pytest.fixture(scope="session")
def rgb_store_builder():
    """``rgb_store_builder(store, settings, models)``: every step up to the ``rgb`` artifacts of the real images
    and ``models`` (a folder benchmark's, see ``benchmark_factory``)."""
    return _build_rgb_store


@pytest.fixture(scope="module")
def single_thread():
    """Torch on one thread for a test module: tiny models gain little from intra-op threads, and on a shared
    2-core machine OpenMP threads spin-waiting against other processes slow training many times."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def file_reads(monkeypatch) -> list[str]:
    """The names of the files whose bytes the file hash cache reads, in order: its reading function, wrapped."""
    read = []
    real = file_hashes.file_hash

    def counting(path):
        read.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(file_hashes, "file_hash", counting)
    return read


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.fixture(scope="session")
def blas_threads():
    """``blas_threads()``: the numbers of threads numpy's and scipy's BLAS libraries run on now, as a set."""
    return _blas_threads


@pytest.fixture
def blas_threads_in(monkeypatch):
    """``blas_threads_in(cls)``: from then on, every call of ``cls.fit`` records the largest number of threads of
    numpy's and scipy's BLAS during the call, into the list returned. BLAS starts the test on two threads (on any
    machine), so a fit run without a limit records 2."""
    with threadpool_limits(limits=2, user_api="blas"):

        def record(cls) -> list[int]:
            counts: list[int] = []
            fit = cls.fit

            def recording_fit(self, *args, **kwargs):
                counts.append(max(_blas_threads()))
                return fit(self, *args, **kwargs)

            monkeypatch.setattr(cls, "fit", recording_fit)
            return counts

        yield record
