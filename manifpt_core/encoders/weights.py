"""Loading a local ResNet-50 weights file, with errors that say what is wrong with it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from manifpt_core.encoders.networks import resnet50_trunk
from manifpt_core.errors import InputError
from manifpt_core.store.hashing import file_hash
from manifpt_core.torch_helpers import load_torch

logger = logging.getLogger(__name__)

# ImageNet statistics, which torchvision's and the Barlow Twins ResNet-50 weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SHOWN = 5  # key names quoted in an error


def _state_dict(payload: object, where: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a plain state_dict or {"state_dict": ...}, "module." prefixes stripped."""
    if isinstance(payload, Mapping) and isinstance(payload.get("state_dict"), Mapping):
        payload = payload["state_dict"]
    if not isinstance(payload, Mapping) or not payload:
        raise InputError(f"{where} holds a {type(payload).__name__}, not a state_dict; save it with "
                         "torch.save(model.state_dict(), path)")
    not_tensors = [str(k) for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise InputError(f"{where} is not a state_dict: {len(not_tensors)} entries are not tensors "
                         f"(e.g. {not_tensors[:_SHOWN]}); save it with torch.save(model.state_dict(), path)")
    # "module." is what DataParallel/DistributedDataParallel put before every name.
    return {str(k).removeprefix("module."): v for k, v in payload.items()}


def require_weights_file(path: str | Path, key: str, without: str) -> Path:
    """The weights file named by config key ``key``; a missing one says to fix the path or drop the key
    (``without`` says what happens then, e.g. "to train an encoder on the real images")."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{key} = '{path}' does not exist; point it at a local ResNet-50 weights file or "
                         f"remove the key {without}")
    return path


def load_resnet50(path: str | Path, key: str, without: str = "to train an encoder on the real images"
                  ) -> tuple[nn.Module, dict[str, str]]:
    """ResNet-50 (``fc`` = Identity, 2048-d features) with the weights in ``path``, in eval mode on the CPU.

    ``key`` is the config key that named the file (``encoders.<space>.weights``);
    every error names it and the file. ``fc.*`` entries are ignored (the
    classifier is not used); every other parameter and buffer must be there
    with ResNet-50's shape. Returns the network and ``{"file": name, "sha256": hex}``.
    """
    path = require_weights_file(path, key, without)
    where = f"{key} = '{path}'"
    payload = load_torch(path, f"ResNet-50 weights file {key} =",
                         fix="give a state_dict saved with torch.save(model.state_dict(), path)")
    state = {k: v for k, v in _state_dict(payload, where).items() if not k.startswith("fc.")}
    net = resnet50_trunk()
    expected = net.state_dict()
    # Old checkpoints lack BatchNorm's num_batches_tracked; torch fills it in, and eval mode never reads it.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [f"{k} {tuple(state[k].shape)} (ResNet-50: {tuple(v.shape)})"
                   for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong_shape:
        problems = []
        for name, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if items:
                problems.append(f"{len(items)} {name} (e.g. {', '.join(items[:_SHOWN])})")
        raise InputError(f"{where} does not match torchvision's ResNet-50: {'; '.join(problems)}. Give the "
                         "weights of torchvision.models.resnet50 (fc may be left out)")
    net.load_state_dict(state, strict=False)  # strictness checked above, with num_batches_tracked allowed
    sha256 = file_hash(path)
    logger.info("loaded ResNet-50 weights from %s (sha256 %s)", path.name, sha256[:12])
    return net.eval(), {"file": path.name, "sha256": sha256}
