"""Shared fixtures: a small GM-CIFAR10-style folder benchmark made on the fly, the demo code location.

Test modules never import from each other or from ``tests``: what they share lives here as fixtures.
``benchmark_factory``, ``png_writer`` and ``file_ager`` are session-scoped (they only hand out functions), so
module-scoped fixtures may use them too.
"""

import json
import os
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from dagster._core.storage.defs_state.base import set_defs_state_storage
from PIL import Image


@pytest.fixture(autouse=True)
def no_current_dagster_instance_state():
    """Each test starts with no "current" Dagster definitions-state storage, and any left set ends with it.

    Entering a Dagster instance sets that storage in a context variable, and loading definitions reads it;
    instances entered and exited out of order (an instance opened inside another's ``with`` and closed after
    it) leave it pointing at a closed instance whose temporary folder is gone, and a later test that loads
    definitions fails to open its sqlite file."""
    with set_defs_state_storage(None):
        yield


def _write_pngs(folder: Path, images: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img[0]).save(folder / f"{i:04d}.png")


def _make_benchmark(root: Path, n_real: int = 180, n_model: int = 60, size: int = 12, seed: int = 0) -> Path:
    """Real images are smooth blobs in two classes (real/small, real/large by blob radius); model 'alpha'
    adds a checkerboard, 'beta' adds stripes: attributable."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]

    def blobs(n, radius=(2, 5)):
        cy, cx = rng.uniform(2, size - 2, (2, n, 1, 1))
        r = rng.uniform(*radius, (n, 1, 1))
        return 200.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)) + rng.uniform(0, 30, (n, size, size))

    checker = 60.0 * ((yy + xx) % 2)
    stripes = 60.0 * (xx % 3 == 0)
    to_u8 = lambda x: np.clip(x, 0, 255).astype(np.uint8)[:, None]  # noqa: E731
    _write_pngs(root / "real" / "small", to_u8(blobs(n_real // 2, (1.5, 2.5))))
    _write_pngs(root / "real" / "large", to_u8(blobs(n_real - n_real // 2, (3.5, 5))))
    _write_pngs(root / "alpha", to_u8(blobs(n_model) + checker))
    _write_pngs(root / "beta", to_u8(blobs(n_model) + stripes))
    return root


@pytest.fixture(scope="session")
def png_writer():
    """``png_writer(folder, images)``: one grey PNG per ``(n, 1, h, w)`` uint8 image, named 0000.png, 0001.png, …"""
    return _write_pngs


@pytest.fixture(scope="session")
def file_ager():
    """``file_ager(folder, seconds=3600)``: set back the modification time of every file under ``folder``, so that
    the file hash cache may record them (it never records a file modified within 2 s of its hashing)."""

    def age(folder: Path, seconds: float = 3600) -> None:
        then = time.time() - seconds
        for path in Path(folder).rglob("*"):
            if path.is_file():
                os.utime(path, (then, then))

    return age


@pytest.fixture(scope="session")
def benchmark_factory():
    """``benchmark_factory(root, n_real=180, n_model=60, size=12, seed=0)``: a folder benchmark under ``root``
    (real/small, real/large, alpha, beta); returns ``root``."""
    return _make_benchmark


@pytest.fixture
def benchmark_root(tmp_path, benchmark_factory) -> Path:
    return benchmark_factory(tmp_path / "bench")


@pytest.fixture(scope="module")
def demo_defs():
    """The code location of the ``demo`` profile (two Fashion-MNIST datasets), built once per test module."""
    from assets.resources import ManifptResource
    from pipelines.definitions import build_definitions

    return build_definitions(ManifptResource(profile="demo"))


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


QUERY_CONFIG = """
dataset = "bench"
n_reference = 120
n_real_class = 60
zoo = []
seeds = [0, 1]
chunk_rows = 16
block_rows = 32
device = "cpu"
[source]
kind = "folder"
path = "{root}"
[attributor]
epochs = 6
patience = 6
batch_size = 16
widths = [8, 16]
mlp_hidden = [32]
[encoders.sl]
steps = 10
batch_size = 32
[encoders.ssl]
steps = 10
batch_size = 32
[artifacts]
kinds = ["nearest", "knn"]
knn_k = 4
[baselines]
methods = []
"""


class QueryStore:
    """A materialized store to query: home, config file, settings, the typed store, and a model folder that is
    not in the store (``outsider``: gamma, noise with a diagonal pattern)."""

    def __init__(self, home, config, root, outsider):
        from manifpt_core.config import load_settings
        from manifpt_core.store import Home, Store

        self.home, self.config, self.root, self.outsider = Home(home), config, root, outsider
        self.settings = load_settings("tiny", config)
        self.store = Store(self.home.store_root, self.settings.dataset)

    def cli_args(self) -> list[str]:
        return ["--home", str(self.home.path), "--profile", "tiny", "--config", str(self.config)]


@pytest.fixture(scope="session")
def query_store(tmp_path_factory, benchmark_factory):
    """Every step of a small folder benchmark (alpha and beta, two seeds, no baselines; their cards give the
    upsampling, one value each, and the same loss) materialized once, with the feature table; tests must not write
    into it (copy it first)."""
    import torch

    from manifpt_core import steps

    work = tmp_path_factory.mktemp("query")
    root = benchmark_factory(work / "bench")
    # Design factors on the model folders' cards: an image judged unknown gets its predicted design factors.
    for model, upsampling in (("alpha", "transposed_conv"), ("beta", "nearest_conv")):
        (root / model / "card.json").write_text(json.dumps({"factors": {"upsampling": upsampling, "loss": "hinge"}}))
    outsider = work / "gamma"
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:12, 0:12]
    diagonal = 60.0 * ((yy - xx) % 4 == 0)
    _write_pngs(outsider, np.clip(rng.uniform(0, 200, (40, 12, 12)) + diagonal, 0, 255).astype(np.uint8)[:, None])
    config = work / "bench.toml"
    config.write_text(QUERY_CONFIG.format(root=root))
    built = QueryStore(work / "home", config, root, outsider)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        steps.run_pipeline(built.store, built.settings, ["alpha", "beta"])
    finally:
        torch.set_num_threads(threads)
    return built


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a TCP port on 127.0.0.1 that nothing listens on now."""
    return _free_port


@pytest.fixture(scope="session")
def wait_for():
    """``wait_for(url, seconds)``: return once ``url`` answers 200, or raise TimeoutError after ``seconds``."""
    return _wait_for
