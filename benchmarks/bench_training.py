"""Training variants of one attributor on a materialized store: accuracy per seed, epochs run, time per epoch.

    .venv/bin/python benchmarks/bench_training.py --home DIR [--dataset fmnist_clothing] [--method rgb]
                                                  [--seeds 0 1 2] [--profile demo]
                                                  [--variant NAME:KEY=VALUE,KEY=VALUE ...]

Trains the method's attributor (the store's splits and classes, the profile's attributor settings) once per
variant, seed by seed, on the same data. A variant overrides attributor settings, e.g.
``--variant fp32:precision=fp32 --variant bf16:precision=bf16`` (the default: fp32 against what ``precision =
"auto"`` resolves to here) or ``--variant today:schedule=constant,epochs=10,lr=0.001
--variant onecycle6:schedule=onecycle,epochs=6,lr=0.003``. Prints each seed's test accuracy, the mean and spread
over seeds, the epochs run and the seconds of a whole training and of an epoch, each against the first
variant. Nothing is asserted.
"""

import argparse
import dataclasses
import logging
import time

import numpy as np
import torch

from manifpt_core.attribution import FitSettings, accuracy, fit_attributor, predict
from manifpt_core.config import load_datasets
from manifpt_core.names import Method
from manifpt_core.steps.attribute import gather_inputs
from manifpt_core.store import Store, class_names
from manifpt_core.store.layout import Home
from manifpt_core.torch_helpers import cpu_has_bf16, resolve_precision


def parse_variant(text: str, base: FitSettings) -> tuple[str, FitSettings]:
    """``NAME:KEY=VALUE,...`` -> (NAME, base with those settings; values typed as the base's own)."""
    name, _, overrides = text.partition(":")
    changes = {}
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        if not hasattr(base, key):
            raise SystemExit(f"--variant {text!r}: {key!r} is not an attributor setting")
        current = getattr(base, key)
        changes[key] = type(current)(value) if isinstance(current, (int, float)) else value
    return name, dataclasses.replace(base, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="a home whose store holds the dataset's artifacts")
    parser.add_argument("--dataset", default="fmnist_clothing")
    parser.add_argument("--method", default="rgb", help="a method: <space> (nearest artifacts), <space>-<kind>, or raw (the control)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default="demo", help="whose attributor settings to start from")
    parser.add_argument("--variant", action="append", default=None, help="NAME:KEY=VALUE,... (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = next(s for s in load_datasets(args.profile) if s.dataset == args.dataset)
    store = Store(Home(args.home).store_root, args.dataset)
    classes = class_names(store.models())
    data = gather_inputs(store, Method.parse(args.method), classes)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data["train"], data["val"], data["test"]
    fast = resolve_precision("auto", "cpu")
    variants = [parse_variant(v, settings.attributor)
                for v in args.variant or ["fp32:precision=fp32", f"{fast}:precision={fast}"]]
    print(f"{args.dataset} {args.method}: {len(x_tr)} training samples {x_tr.shape[1:]}, {len(classes)} classes, "
          f"{torch.get_num_threads()} thread(s), native bf16: {cpu_has_bf16()}, auto resolves to {fast}")
    rows = {}
    for name, fit in variants:
        accs, epochs, seconds = [], [], []
        for seed in args.seeds:
            start = time.perf_counter()
            result = fit_attributor(x_tr, y_tr, x_va, y_va, len(classes), fit, seed=seed, progress=False)
            seconds.append(time.perf_counter() - start)
            epochs.append(len(result.history))
            accs.append(accuracy(y_te, predict(result, x_te)))
            print(f"  {name} seed {seed}: test accuracy {100 * accs[-1]:.2f}%, {epochs[-1]} epochs (best "
                  f"{result.best_epoch}), {seconds[-1]:.1f} s, {seconds[-1] / epochs[-1]:.2f} s an epoch "
                  "(incl. validation)", flush=True)
        rows[name] = (np.mean(accs), np.std(accs, ddof=1) if len(accs) > 1 else float("nan"), np.mean(epochs),
                      np.sum(seconds), np.sum(seconds) / np.sum(epochs))
    first = next(iter(rows.values()))
    for name, (mean, std, epochs, total, epoch) in rows.items():
        print(f"{name}: accuracy {100 * mean:.2f} ± {100 * std:.2f}% ({100 * (mean - first[0]):+.2f} points), "
              f"{epochs:.1f} epochs, {total:.0f} s in all ({first[3] / total:.2f}x faster), {epoch:.2f} s an epoch "
              f"({first[4] / epoch:.2f}x)")


if __name__ == "__main__":
    main()
