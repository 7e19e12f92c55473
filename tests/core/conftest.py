"""Fixtures of the core tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Torch on one thread for a test module: tiny models gain little from intra-op threads, and on a shared
    2-core machine OpenMP threads spin-waiting against other processes slow training many times."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
