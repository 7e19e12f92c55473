"""The shared torch helpers: devices, seeding, channel statistics, atomic saving and checked loading."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import (
    BasicBlock,
    autocast_for,
    batch_indices,
    channel_stats,
    image_layout,
    load_tagged,
    load_torch,
    make_generator,
    resolve_device,
    save_torch,
    seeded,
)

# --- devices -------------------------------------------------------------------


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="'tpu'.*auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(InputError, match="auto, cpu, cuda"):
        resolve_device(None)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            resolve_device("cuda")


def test_autocast_is_a_no_op_on_cpu():
    with autocast_for("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


# The shapes of a strided 1x1 shortcut that the channels-last oneDNN kernel of AVX-512 CPUs without AMX breaks on.
_STRIDED_SHORTCUT = """
import sys, torch
from manifpt_core.torch_helpers import image_layout
layout = image_layout("cpu")
conv = torch.nn.Conv2d(8, 16, 1, stride=2).to(memory_format=layout)
for precision in (torch.float32, torch.bfloat16):
    for _ in range(5):
        x = torch.randn(16, 8, 128, 128).contiguous(memory_format=layout).requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == torch.bfloat16):
            y = conv(x)
        y.float().sum().backward()
print("trained", layout)
"""


def test_the_cpu_layout_trains_a_strided_shortcut_without_crashing():
    # In a child process: where the layout is wrong for this CPU, the kernel corrupts memory and the process dies.
    done = subprocess.run([sys.executable, "-c", _STRIDED_SHORTCUT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "trained" in done.stdout, (done.returncode, done.stderr[-2000:])
    assert image_layout("cuda") == torch.channels_last
    expected = torch.channels_last if torch.cpu._is_amx_tile_supported() else torch.contiguous_format
    assert image_layout("cpu") == expected


# --- random numbers ----------------------------------------------------------------


def test_seeded_is_reproducible_and_restores_the_callers_rng():
    before = torch.get_rng_state()
    with seeded(7, "cpu"):
        a = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    with seeded(7, "cpu"):
        assert torch.equal(torch.rand(3), a)


def test_batch_indices_cover_each_shuffle_once():
    batches = list(batch_indices(5, 2, 5, make_generator(0)))
    assert len(batches) == 5 and all(len(b) == 2 for b in batches)
    flat = torch.cat(batches)
    assert sorted(flat[:5].tolist()) == [0, 1, 2, 3, 4] and sorted(flat[5:].tolist()) == [0, 1, 2, 3, 4]
    assert all(torch.equal(a, b) for a, b in zip(batches, batch_indices(5, 2, 5, make_generator(0))))


# --- networks and statistics -----------------------------------------------------


def test_basic_block_keeps_or_projects_the_shape():
    x = torch.randn(2, 4, 8, 8)
    assert isinstance(BasicBlock(4, 4).shortcut, nn.Identity) and BasicBlock(4, 4)(x).shape == x.shape
    assert BasicBlock(4, 6, stride=2)(x).shape == (2, 6, 4, 4)


@pytest.mark.parametrize("shape", [(2500, 3, 4, 4), (2100, 5)])
def test_channel_stats_match_numpy_in_float64(shape):
    x = np.random.default_rng(0).normal(3.0, 2.0, shape).astype(np.float32)
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    mean, std = channel_stats(x)  # more rows than one chunk: the chunk merge is exercised
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axes), rtol=1e-6)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axes), rtol=1e-6)
    assert channel_stats(np.ones((3, 2), np.float32))[1].tolist() == pytest.approx([1e-6, 1e-6])


# --- torch files ---------------------------------------------------------------------


def test_save_then_load_round_trips_tensors_and_plain_values(tmp_path):
    obj = {"w": torch.arange(6.0).view(2, 3), "meta": {"epochs": [1, 2], "name": "x"}}
    path = save_torch(obj, tmp_path / "sub" / "f.pt")  # missing directories are created
    assert path == tmp_path / "sub" / "f.pt" and [p.name for p in path.parent.iterdir()] == ["f.pt"]
    back = load_torch(path, "test file")
    assert torch.equal(back["w"], obj["w"]) and back["meta"] == obj["meta"]


def test_save_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = save_torch({"v": torch.zeros(1)}, tmp_path / "f.pt")
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_torch({"v": lambda: None}, path)  # a lambda does not pickle
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]
    assert torch.equal(load_torch(path, "test file")["v"], torch.zeros(1))


def test_load_of_a_missing_file_names_it_what_it_is_and_the_fix(tmp_path):
    with pytest.raises(InputError, match=r"generator checkpoint '.*nope\.pt' does not exist; train it"):
        load_torch(tmp_path / "nope.pt", "generator checkpoint", missing_fix="train it")
    with pytest.raises(InputError, match="is not a file"):
        load_torch(tmp_path, "generator checkpoint")


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(_torch_bytes({"w": torch.ones(100)})[:200], id="truncated"),
        pytest.param(b"not a torch file", id="garbage"),
        pytest.param(_torch_bytes(nn.Linear(2, 2)), id="module pickle"),
        pytest.param(pickle.dumps(OrderedDict(a=1), protocol=2), id="plain pickle"),
    ],
)
def test_load_of_a_bad_file_names_it_what_it_is_and_the_fix(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"encoder file '.*bad\.pt' does not load.*corrupt.*; delete it to recompute"):
        load_torch(path, "encoder file")


def test_load_tagged_refuses_other_formats_and_versions(tmp_path):
    path = save_torch({"format": "manifpt-x", "version": 2, "w": torch.ones(1)}, tmp_path / "x.pt")
    assert load_tagged(path, "x file", "manifpt-x", 2, fix="redo it", missing_fix="make it")["version"] == 2
    with pytest.raises(InputError, match=r"x\.pt' is not a manifpt y file \(no format tag 'manifpt-y'\); redo it"):
        load_tagged(path, "y file", "manifpt-y", 2, fix="redo it", missing_fix="make it")
    with pytest.raises(InputError, match=r"x\.pt' has x file format version 2, this manifpt reads version 3; redo"):
        load_tagged(path, "x file", "manifpt-x", 3, fix="redo it", missing_fix="make it")
