"""Embedding throughput: the embedding step end to end against the encoder's bare forward pass.

    .venv/bin/python benchmarks/bench_embed.py [--device cpu|cuda] [--n-small 20000] [--n-resnet 512]

The step (``manifpt_core.steps.embed_source``) reads uint8 images from a Zarr
store block by block, preprocesses them (resize, channel replication,
normalisation), runs the encoder and writes float32 vectors to Zarr. The bare
forward pass runs the same network on random tensors already preprocessed and on
the device, at the same batch size: what the hardware gives the network alone.
Printed per encoder: images/s of each and their ratio (target >= 0.8). The step's
time includes loading the encoder from the store, a fixed cost that more images amortize.
Encoders: the demo's trained small ResNet (28x28 grey, 256-d) and ResNet-50 at
224x224 (2048-d; random weights from a local file: speed does not depend on them).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from manifpt_core.config import settings_from_dict
from manifpt_core.encoders import EncoderSettings, build_encoder, save_encoder
from manifpt_core.steps.embed import embed_source
from manifpt_core.store import Store, create_rows, run_cached
from manifpt_core.store.layout import ENCODER_FILE
from manifpt_core.store.records import ImagesSummary, SpaceSummary
from manifpt_core.torch_helpers import autocast_for

BATCH = 256


def write_images(store: Store, images: np.ndarray, chunk_rows: int) -> None:
    def compute(tmp: Path, fp: str):
        writer = create_rows(tmp, None, images.shape, np.uint8, chunk_rows)
        for start in range(0, len(images), chunk_rows):
            writer.write(images[start : start + chunk_rows])
        summary = ImagesSummary(n_samples=len(images), image_shape=list(images.shape[1:]), manifest="",
                                frechet_space="", n_reference=len(images))
        return writer.content_hash(), summary

    run_cached(store.paths.images("real"), "ingest_real", "bench", {}, {}, compute, ImagesSummary)


def write_space(store: Store, space: str, encoder) -> None:
    def compute(tmp: Path, fp: str):
        tmp.mkdir(parents=True)
        save_encoder(encoder, tmp / ENCODER_FILE)
        return fp, SpaceSummary(space={"space": space}, fingerprint=fp, encoder=encoder.card)

    run_cached(store.paths.space(space), "space", "bench", {}, {"arch": encoder.card["arch"]}, compute, SpaceSummary)


def bare_forward(encoder, shape: tuple[int, ...], n: int, device: str) -> float:
    """images/s of the network alone on preprocessed random tensors already on the device."""
    network = encoder.network.to(device).eval()
    x = torch.randn((BATCH, *shape), device=device)
    with torch.inference_mode(), autocast_for(device):
        network(x)  # warm-up: kernel selection, allocator
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(-(-n // BATCH)):
            network(x).float().cpu()
        if device == "cuda":
            torch.cuda.synchronize()
    return BATCH * (-(-n // BATCH)) / (time.perf_counter() - t0)


def measure(name: str, space: str, encoder, images: np.ndarray, device: str, root: Path) -> None:
    settings = settings_from_dict({"profile": "bench", "dataset": space, "chunk_rows": 1024, "block_rows": 4096,
                                   "device": device})
    store = Store(root, space)
    write_images(store, images, settings.chunk_rows)
    write_space(store, space, encoder)
    # Warm-up on a small copy, so both sides run with kernels selected.
    encoder.embed(images[:BATCH], device=device, batch_size=BATCH)
    t0 = time.perf_counter()
    outcome = embed_source(store, settings, space, "real")
    step = len(images) / (time.perf_counter() - t0)
    assert not outcome.reused
    shape = tuple(encoder.preprocess.apply(images[:1], "cpu").shape[1:])
    bare = bare_forward(encoder, shape, len(images), device)
    print(f"{name:22s} {len(images):>7d} {str(shape):>15s} {outcome.summary.dim:>5d} "
          f"{step:>12.1f} {bare:>12.1f} {step / bare:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-small", type=int, default=20000, help="images for the small trained encoder")
    parser.add_argument("--n-resnet", type=int, default=512, help="images for ResNet-50 at 224x224")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, batch {BATCH}")
    print(f"{'encoder':22s} {'images':>7s} {'network input':>15s} {'dim':>5s} {'step img/s':>12s} "
          f"{'bare img/s':>12s} {'ratio':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        small_images = rng.integers(0, 256, (args.n_small, 1, 28, 28), dtype=np.uint8)
        small = build_encoder("ssl", EncoderSettings(steps=2, batch_size=32), small_images[:256], None,
                              device=args.device, progress=False)
        measure("small_resnet (ssl)", "ssl", small, small_images, args.device, Path(tmp))
        weights = Path(tmp) / "resnet50.pt"
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
        resnet = build_encoder("sl", EncoderSettings(weights=str(weights)), None, None, device=args.device)
        resnet_images = rng.integers(0, 256, (args.n_resnet, 1, 28, 28), dtype=np.uint8)
        measure("resnet50 224x224 (sl)", "sl", resnet, resnet_images, args.device, Path(tmp))


if __name__ == "__main__":
    main()
