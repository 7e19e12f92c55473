"""Fixtures of the core tests."""

from pathlib import Path

import pytest
import torch

from manifpt_core.store import file_hashes


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
