"""Fixtures of the Dagster tests: a config file over a small folder benchmark, the five step groups."""

import pytest

STEP_GROUPS = {"ingestion", "embedding", "index", "artifacts", "attribution"}


@pytest.fixture(scope="session")
def step_groups():
    """The five step groups every dataset's assets fall into."""
    return set(STEP_GROUPS)


@pytest.fixture(scope="session")
def config_writer(benchmark_factory):
    """``config_writer(tmp_path)``: a folder benchmark at ``tmp_path / "bench"`` and, beside it, ``bench.toml``
    (dataset ``bench``, tiny sizes) reading it; returns the config file's path."""

    def write_config(tmp_path):
        root = benchmark_factory(tmp_path / "bench")
        config = tmp_path / "bench.toml"
        config.write_text(
            f"""
dataset = "bench"
n_reference = 120
n_real_class = 60
zoo = []
chunk_rows = 16
block_rows = 32
[source]
kind = "folder"
path = "{root}"
[attributor]
epochs = 2
batch_size = 32
widths = [8, 16]
"""
        )
        return config

    return write_config
