"""Training the attributor on artifacts, and predicting with a trained one."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from manifpt_core.attribution._checks import (
    check_artifacts,
    check_labels,
    check_num_classes,
)
from manifpt_core.attribution.metrics import accuracy, confusion_matrix
from manifpt_core.attribution.persistence import load_attributor, save_attributor
from manifpt_core.attribution.result import FitResult, FitSettings, build_network
from manifpt_core.errors import InputError
from manifpt_core.torch_helpers import (
    autocast_for,
    channel_stats,
    image_layout,
    per_channel,
    resolve_device,
    resolve_precision,
)

# accuracy, confusion_matrix, save/load, channel_stats and resolve_device live in other modules and are
# re-exported here so the whole training API can be imported from one place.
__all__ = [
    "FitResult",
    "FitSettings",
    "Predictor",
    "accuracy",
    "channel_stats",
    "confusion_matrix",
    "fit_attributor",
    "load_attributor",
    "predict",
    "predict_logits",
    "predict_proba",
    "resolve_device",
    "save_attributor",
    "softmax",
]

logger = logging.getLogger(__name__)

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # (training batch, rng) -> new batch


def _batch(x: np.ndarray, index: np.ndarray | slice, mean: torch.Tensor, std: torch.Tensor,
           augment: tuple[Augment, np.random.Generator] | None = None) -> torch.Tensor:
    # Only this batch is copied into torch; standardizing on the device keeps the host cheap.
    xb = x[index]
    if augment is not None:
        xb = augment[0](xb, augment[1])
    xb = torch.from_numpy(np.ascontiguousarray(xb)).to(mean.device, non_blocking=True)
    xb = (xb - mean) / std
    # Image batches in the networks' weights' layout (channels-last where it is fast and sound).
    return xb.contiguous(memory_format=image_layout(str(mean.device))) if xb.ndim == 4 else xb


def _evaluate(
    net: torch.nn.Module,
    x: np.ndarray,
    mean_t: torch.Tensor,
    std_t: torch.Tensor,
    device: str,
    batch_size: int,
    want_features: bool,
    precision: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits (float32, CPU) and optionally pooled features for all of x, in batches, in ``precision``."""
    logits, feats = [], []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            xb = _batch(x, slice(start, start + batch_size), mean_t, std_t)
            with autocast_for(device, precision):
                f = net.features(xb).float()
            # The head in float32 whatever the precision: an enrolled class's logits (manifpt_core.attribution.enroll)
            # are computed from stored features exactly so.
            logits.append(net.head(f).cpu())
            if want_features:
                feats.append(f.cpu())
    return torch.cat(logits), (torch.cat(feats) if want_features else None)


def _train_epoch(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: np.ndarray,
    y: torch.Tensor,
    mean_t: torch.Tensor,
    std_t: torch.Tensor,
    order_gen: torch.Generator,
    batch_size: int,
    device: str,
    precision: str,
    augment: tuple[Augment, np.random.Generator] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> tuple[float, float]:
    """One pass over (x, y) in an order drawn from ``order_gen``, each batch through ``augment`` when given and
    the learning rate stepped by ``scheduler`` after each batch when given; returns mean loss and accuracy."""
    net.train()
    order = torch.randperm(len(x), generator=order_gen).numpy()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        xb = _batch(x, index, mean_t, std_t, augment)
        yb = y[index].to(device, non_blocking=True)
        with autocast_for(device, precision):
            logits = net(xb)
        # Loss in float32: bf16 logits would make the softmax needlessly coarse.
        loss = F.cross_entropy(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.item() * len(index)
        correct += int((logits.argmax(1) == yb).sum())
    return loss_sum / len(x), correct / len(x)


def fit_attributor(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    settings: FitSettings,
    seed: int,
    device: str = "cpu",
    progress: bool = True,
    augment: Augment | None = None,
) -> FitResult:
    """Train a network to name the generative model (label) of each artifact.

    Image-shaped artifacts (N, C, H, W) train a SmallResNet, vectors (N, D) an MLP.
    Adam + cross-entropy on inputs standardized per channel (or feature) with training-set statistics.
    Validation accuracy is measured every epoch; the weights of the best epoch are kept and
    training stops after ``settings.patience`` epochs without improvement. Seeds torch's
    global RNG with ``seed`` (weight init) and shuffles with a generator seeded by ``seed``,
    so on CPU the same seed gives identical results. ``device`` may be auto/cpu/cuda;
    ``settings.precision`` ``auto`` trains in bf16 autocast on CUDA and on CPUs with native bf16, else fp32;
    the result keeps the precision used, so predictions run in it too. ``augment(batch, rng)``, when given, transforms each
    training batch (validation and test inputs never), with an rng seeded by ``seed``.
    """
    if not isinstance(settings, FitSettings):
        raise InputError(f"settings must be a FitSettings, got {type(settings).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an int, got {seed!r}")
    num_classes = check_num_classes(num_classes)
    x_train = check_artifacts(x_train, "x_train")
    y_train = check_labels(y_train, "y_train", len(x_train), num_classes)
    x_val = check_artifacts(x_val, "x_val", in_channels=x_train.shape[1])
    y_val = check_labels(y_val, "y_val", len(x_val), num_classes)
    missing = np.setdiff1d(np.arange(num_classes), y_train)
    if missing.size:
        raise InputError(
            f"class(es) {missing.tolist()} missing from y_train; every one of the {num_classes} "
            f"classes needs training samples (or lower num_classes)"
        )
    device = resolve_device(device)
    precision = resolve_precision(settings.precision, device)
    settings = dataclasses.replace(settings, precision=precision)

    mean, std = channel_stats(x_train)
    in_channels, input_ndim = x_train.shape[1], x_train.ndim
    mean_t = per_channel(torch.from_numpy(mean), input_ndim).to(device)
    std_t = per_channel(torch.from_numpy(std), input_ndim).to(device)
    torch.manual_seed(int(seed))
    order_gen = torch.Generator().manual_seed(int(seed))
    net = build_network(settings, in_channels, num_classes, input_ndim).to(device)
    if input_ndim == 4:
        net = net.to(memory_format=image_layout(device))
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, epochs=settings.epochs, steps_per_epoch=-(-len(x_train) // settings.batch_size))
        if settings.schedule == "onecycle" else None)
    y_train_t = torch.from_numpy(y_train)
    augmenting = (augment, np.random.default_rng(int(seed))) if augment is not None else None

    history: list[dict[str, float]] = []
    best_state, best_epoch, best_acc, stale = None, 0, -1.0, 0
    with tqdm(range(1, settings.epochs + 1), desc="fit attributor", unit="epoch", disable=not progress) as bar:
        for epoch in bar:
            train_loss, train_acc = _train_epoch(
                net, optimizer, x_train, y_train_t, mean_t, std_t, order_gen, settings.batch_size, device, precision,
                augmenting, scheduler)
            val_logits, _ = _evaluate(net, x_val, mean_t, std_t, device, max(settings.batch_size, 512), False,
                                      precision)
            val_acc = float((val_logits.argmax(1).numpy() == y_val).mean())
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_accuracy": val_acc,
            }
            history.append(row)
            logger.info(
                "epoch %d/%d: train_loss=%.4f train_acc=%.4f val_acc=%.4f",
                epoch, settings.epochs, row["train_loss"], row["train_accuracy"], val_acc,
            )
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{val_acc:.3f}")
            if val_acc > best_acc:
                # Copy to CPU: state_dict() returns views of live parameters that later steps overwrite.
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
                best_epoch, best_acc, stale = epoch, val_acc, 0
            else:
                stale += 1
                if stale >= settings.patience:
                    logger.info(
                        "early stop at epoch %d: best val_acc=%.4f at epoch %d", epoch, best_acc, best_epoch
                    )
                    break
    return FitResult(
        state_dict=best_state,
        mean=mean,
        std=std,
        best_epoch=best_epoch,
        best_val_accuracy=best_acc,
        num_classes=num_classes,
        in_channels=in_channels,
        settings=settings,
        history=history,
        input_ndim=input_ndim,
    )


class Predictor:
    """A trained attributor built once on a device, to predict many times (queries call it per image)."""

    def __init__(self, result: FitResult, device: str = "cpu") -> None:
        if not isinstance(result, FitResult):
            raise InputError(f"result must be a FitResult, got {type(result).__name__}")
        self.result, self.device = result, resolve_device(device)
        self.net = result.build_network().to(self.device)
        if result.input_ndim == 4:
            self.net = self.net.to(memory_format=image_layout(self.device))
        ndim = result.input_ndim
        self.mean = per_channel(torch.from_numpy(np.asarray(result.mean, np.float32)), ndim).to(self.device)
        self.std = per_channel(torch.from_numpy(np.asarray(result.std, np.float32)), ndim).to(self.device)

    def logits(self, x: np.ndarray, batch_size: int = 512, return_features: bool = False
               ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Logits (N, num_classes) float32 for artifacts ``x``; with return_features also (N, D) features."""
        result = self.result
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(x, np.ndarray) and x.ndim != result.input_ndim:
            kind = "images (N, C, H, W)" if result.input_ndim == 4 else "vectors (N, D)"
            raise InputError(f"this attributor was trained on {kind}; x has shape {x.shape}")
        x = check_artifacts(x, "x", in_channels=result.in_channels)
        logits, feats = _evaluate(self.net, x, self.mean, self.std, self.device, batch_size, return_features,
                                  result.settings.precision)
        return (logits.numpy(), feats.numpy()) if return_features else logits.numpy()

    def proba(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Softmax class probabilities (N, num_classes) float32."""
        return softmax(self.logits(x, batch_size))


def predict_logits(
    result: FitResult, x: np.ndarray, device: str = "cpu", batch_size: int = 512, return_features: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Logits (N, num_classes) float32 for artifacts ``x``; with return_features also (N, D) features."""
    return Predictor(result, device).logits(x, batch_size, return_features)


def predict(
    result: FitResult, x: np.ndarray, device: str = "cpu", batch_size: int = 512, return_features: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Predicted labels (N,) int64 for artifacts ``x`` (float32, (N, C, H, W)).

    With ``return_features=True`` returns ``(labels, features)``, features being the
    penultimate pooled activations as float32 (N, D), for later metrics.
    """
    out = predict_logits(result, x, device, batch_size, return_features)
    logits, feats = out if return_features else (out, None)
    labels = logits.argmax(axis=1).astype(np.int64)
    return (labels, feats) if return_features else labels


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, num_classes) float32 from logits, as every prediction here computes them."""
    return torch.softmax(torch.from_numpy(np.asarray(logits, np.float32)), dim=1).numpy()


def predict_proba(result: FitResult, x: np.ndarray, device: str = "cpu", batch_size: int = 512) -> np.ndarray:
    """Softmax class probabilities (N, num_classes) float32 for artifacts ``x``."""
    return softmax(predict_logits(result, x, device, batch_size))
