"""Cold time of every zoo entry of a profile: training on the reference images, then sampling.

    .venv/bin/python benchmarks/bench_zoo.py [--profile demo] [--dataset NAME]

Prints, per entry, the training and sampling seconds and the Fréchet distance
of the samples to held-out real images (pixel-PCA space), then the total.
"""

import argparse
import tempfile
import time

from manifpt_core.config import load_settings
from manifpt_core.steps import ingest_real
from manifpt_core.steps.sanity import frechet_to_real
from manifpt_core.store import Store
from manifpt_core.torch_helpers import resolve_device
from manifpt_core.zoo import get_family


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--dataset", default=None, help="dataset of the profile (default: the first)")
    args = parser.parse_args()
    settings = load_settings(args.profile, dataset=args.dataset)
    device = resolve_device(settings.device)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp, settings.dataset)
        real = ingest_real(store, settings)
        reference, held_out = store.real.reference_images(), store.real.query_images()
        shape = tuple(reference.shape[1:])
        print(f"profile {args.profile}, dataset {settings.dataset}: {len(reference)} reference images {shape}, "
              f"{settings.n_per_model} samples per entry, device {device}")
        print(f"real floor of the Fréchet distance: {real.summary.frechet_real_floor:.3f}")
        print(f"{'entry':16s} {'family':10s} {'train s':>8s} {'sample s':>9s} {'FD':>8s}")
        total = 0.0
        for card in settings.zoo:
            family = get_family(card.family)
            t0 = time.perf_counter()
            state = family.train(reference, card, device=device, progress=False)
            t1 = time.perf_counter()
            images = family.sample(state, card, shape, settings.n_per_model, seed=card.seed + 1, device=device)
            t2 = time.perf_counter()
            total += t2 - t0
            fd = frechet_to_real(images, reference, held_out)
            print(f"{card.name:16s} {card.family:10s} {t1 - t0:8.1f} {t2 - t1:9.1f} {fd:8.3f}", flush=True)
        print(f"{'whole zoo':16s} {'':10s} {total:8.1f} s ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
