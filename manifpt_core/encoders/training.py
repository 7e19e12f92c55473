"""Training an encoder on the real reference images: supervised (``sl``) or Barlow Twins (``ssl``).

Both share one loop: seeded initialisation and batch order (deterministic on
the CPU), AdamW with a cosine learning rate, bf16 autocast on CUDA, a progress
bar, and a loss history for the encoder card.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from manifpt_core.encoders.barlow import (
    augment,
    augmentation_settings,
    barlow_twins_loss,
)
from manifpt_core.encoders.networks import EncoderNet, Projector
from manifpt_core.encoders.preprocess import Preprocess
from manifpt_core.encoders.settings import MIN_IMAGE_SIDE, EncoderSettings
from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import autocast_for, batch_indices, channel_stats, make_generator, seeded

logger = logging.getLogger(__name__)

# Losses are read back (a device sync) and recorded once per this many steps.
LOG_EVERY = 10
# A std floor on the [0, 1] scale, so a constant channel is not blown up by 1 / std.
STD_FLOOR = 1e-3


def measured_preprocess(images: np.ndarray, settings: EncoderSettings) -> Preprocess:
    """Native channels, ``settings.image_size``, and mean/std measured on ``images`` (on the [0, 1] scale)."""
    mean, std = channel_stats(images)
    return Preprocess(
        size=settings.image_size, filter=settings.resize_filter, channels=images.shape[1],
        mean=tuple(float(m) / 255.0 for m in mean), std=tuple(max(float(s) / 255.0, STD_FLOOR) for s in std),
    )


def _check_training_images(images: np.ndarray, space: str) -> None:
    if images is None:
        raise InputError(f"training the {space} encoder needs the real reference images; none were given")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{images.dtype} of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise InputError(f"training images must be uint8 of shape (N, C, H, W), got {got}")
    if images.shape[0] < 2:
        raise InputError(f"training the {space} encoder needs at least 2 real images, got {images.shape[0]}")
    if min(images.shape[2:]) < MIN_IMAGE_SIDE:
        raise InputError(f"the trained encoder needs images of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels, "
                         f"got {images.shape[2]}x{images.shape[3]}; set encoders.{space}.image_size to upsample")


def class_indices(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, y)``: the distinct labels, sorted, and each sample's index into them."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be integers of shape ({n},), one per image, got {labels.dtype} "
                         f"of shape {labels.shape}")
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise InputError(f"supervised training needs at least 2 classes, the labels hold {classes.tolist()}; "
                         "set encoders.sl.weights to use a ResNet-50 instead")
    return classes, y.astype(np.int64)


# Maps a batch's row indices to its loss and, for a classifier, its number of correct predictions.
LossOf = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def _fit(name: str, modules: list[nn.Module], loss_of: LossOf, images: np.ndarray, settings: EncoderSettings,
         seed: int, device: str, progress: bool) -> dict[str, Any]:
    """Run ``settings.steps`` AdamW steps on ``loss_of`` of seeded batches; return the training record."""
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.steps)
    for module in modules:
        module.train()
    history: list[dict[str, float]] = []
    loss_sum = torch.zeros((), device=device)
    correct_sum = torch.zeros((), device=device)
    started, seen = time.perf_counter(), 0
    order = make_generator(seed)
    logger.info("training the %s encoder: %d steps of %d images from %d", name, settings.steps,
                settings.batch_size, len(images))
    with tqdm(total=settings.steps, desc=f"train {name} encoder", unit="step", disable=not progress) as bar:
        for step, index in enumerate(batch_indices(len(images), settings.batch_size, settings.steps, order), 1):
            loss, correct = loss_of(index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach()
            seen += len(index)
            if correct is not None:
                correct_sum += correct
            if step % LOG_EVERY == 0 or step == settings.steps:
                row = {"step": step, "loss": float(loss_sum) / (step - (history[-1]["step"] if history else 0))}
                if correct is not None:
                    row["accuracy"] = float(correct_sum) / seen
                if not math.isfinite(row["loss"]):
                    raise InputError(f"training the {name} encoder diverged at step {step} (loss {row['loss']}); "
                                     f"lower encoders.{name}.lr (now {settings.lr})")
                history.append(row)
                loss_sum.zero_()
                correct_sum.zero_()
                seen = 0
                bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "step"}, refresh=False)
                logger.debug("%s encoder %s", name, row)
            bar.update(1)
    seconds = time.perf_counter() - started
    logger.info("trained the %s encoder in %.1f s; final %s", name, seconds, history[-1])
    for module in modules:
        module.eval()
    return {"history": history, "seconds": round(seconds, 3), "final_loss": history[-1]["loss"],
            "optimizer": "adamw", "schedule": "cosine", "device": str(device)}


def train_encoder(space: str, images: np.ndarray, labels: np.ndarray | None, settings: EncoderSettings,
                  seed: int, device: str, progress: bool) -> tuple[EncoderNet, Preprocess, dict[str, Any]]:
    """Train the ``space`` encoder on ``images``; return the network (eval mode), its preprocessing and
    the training record (settings, loss history, seconds) for the card."""
    _check_training_images(images, space)
    if space == "sl":
        if labels is None:
            raise InputError("the sl space needs class labels of the real images to train its encoder, and this "
                             "dataset has none; set encoders.sl.weights to a local ResNet-50 weights file, or "
                             "use the ssl space, which trains without labels")
        classes, y = class_indices(labels, len(images))
    preprocess = measured_preprocess(images, settings)
    data = torch.from_numpy(np.ascontiguousarray(images))  # uint8, on the CPU: batches move one at a time
    record: dict[str, Any] = {"settings": settings.settings(), "seed": seed, "images": len(images),
                              "input_shape": list(images.shape[1:])}
    with seeded(seed, device):
        net = EncoderNet(images.shape[1], settings.widths, settings.feature_dim).to(device)
        if space == "sl":
            head = nn.Linear(settings.feature_dim, len(classes)).to(device)
            targets = torch.from_numpy(y)

            def loss_of(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                x = preprocess.apply(data[index], device)
                with autocast_for(device):
                    logits = head(net(x))
                target = targets[index].to(device)
                # Loss in float32: bf16 logits would make the softmax needlessly coarse.
                return F.cross_entropy(logits.float(), target), (logits.argmax(1) == target).sum()

            record |= {"classes": classes.tolist(), "augmentation": None}
            record |= _fit(space, [net, head], loss_of, images, settings, seed, device, progress)
        else:
            projector = Projector(settings.feature_dim, settings.projector_dim).to(device)
            # A stream apart from the batch order's (which is seeded with ``seed``).
            views = make_generator((seed + 1) % 2**63)

            def loss_of(index: torch.Tensor) -> tuple[torch.Tensor, None]:
                x = preprocess.scale(data[index], device)
                v1, v2 = preprocess.normalize(augment(x, views)), preprocess.normalize(augment(x, views))
                with autocast_for(device):
                    z1, z2 = projector(net(v1)), projector(net(v2))
                return barlow_twins_loss(z1, z2, settings.barlow_lambda), None

            record |= {"augmentation": augmentation_settings()}
            record |= _fit(space, [net, projector], loss_of, images, settings, seed, device, progress)
    return net, preprocess, record
