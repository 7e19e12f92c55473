"""bf16 against fp32 training of one attributor on a materialized store: accuracy per seed and time per epoch.

    .venv/bin/python benchmarks/bench_precision.py --home DIR [--dataset fmnist_clothing] [--method rgb]
                                                   [--seeds 0 1 2] [--profile demo]

Trains the method's attributor (the store's splits and classes, the profile's attributor settings) once in fp32
and once in the precision ``auto`` resolves to on this machine, seed by seed, on the same data; prints each
seed's test accuracy, the spread over seeds, and the seconds per epoch of both, with their ratio. The attributor
defaults to ``auto`` only where this shows bf16 within the seeds' spread of fp32. Nothing is asserted.
"""

import argparse
import dataclasses
import logging
import time

import numpy as np
import torch

from manifpt_core.attribution import accuracy, fit_attributor, predict
from manifpt_core.config import load_datasets
from manifpt_core.names import Method
from manifpt_core.steps.attribute import gather_inputs
from manifpt_core.store import Store, class_names
from manifpt_core.store.layout import Home
from manifpt_core.torch_helpers import cpu_has_bf16, resolve_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="a home whose store holds the dataset's artifacts")
    parser.add_argument("--dataset", default="fmnist_clothing")
    parser.add_argument("--method", default="rgb", help="a method: <space> (nearest artifacts), <space>-<kind>, or raw (the control)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default="demo", help="whose attributor settings to train with")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = next(s for s in load_datasets(args.profile) if s.dataset == args.dataset)
    store = Store(Home(args.home).store_root, args.dataset)
    classes = class_names(store.models())
    data = gather_inputs(store, Method.parse(args.method), classes)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data["train"], data["val"], data["test"]
    fast = resolve_precision("auto", "cpu")
    print(f"{args.dataset} {args.method}: {len(x_tr)} training samples {x_tr.shape[1:]}, {len(classes)} classes, "
          f"{torch.get_num_threads()} thread(s), native bf16: {cpu_has_bf16()}, auto resolves to {fast}")
    rows = {}
    for precision in ("fp32", fast):
        fit = dataclasses.replace(settings.attributor, precision=precision)
        accs, per_epoch = [], []
        for seed in args.seeds:
            start = time.perf_counter()
            result = fit_attributor(x_tr, y_tr, x_va, y_va, len(classes), fit, seed=seed, progress=False)
            per_epoch.append((time.perf_counter() - start) / len(result.history))
            accs.append(accuracy(y_te, predict(result, x_te)))
            print(f"  {precision} seed {seed}: test accuracy {100 * accs[-1]:.2f}%, {len(result.history)} epochs, "
                  f"{per_epoch[-1]:.2f} s an epoch (incl. validation)", flush=True)
        rows[precision] = (np.mean(accs), np.std(accs, ddof=1) if len(accs) > 1 else float("nan"),
                           np.median(per_epoch))
    for precision, (mean, std, epoch) in rows.items():
        print(f"{precision}: accuracy {100 * mean:.2f} ± {100 * std:.2f}%, {epoch:.2f} s an epoch")
    if fast != "fp32":
        gap = rows[fast][0] - rows["fp32"][0]
        print(f"{fast} vs fp32: {rows['fp32'][2] / rows[fast][2]:.2f}x faster an epoch; accuracy {100 * gap:+.2f} "
              f"points (fp32 seed spread ± {100 * rows['fp32'][1]:.2f})")


if __name__ == "__main__":
    main()
