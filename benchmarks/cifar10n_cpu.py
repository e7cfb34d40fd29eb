"""CE vs PLReMix on CIFAR-10N (human labels) through the ``cifar10n`` source on the CIFAR-10 JPEG folder, CPU budget
(issue #16).

    python benchmarks/cifar10n_cpu.py [--sets worst aggre] [--seeds 3] [--limit 5000] [--epochs 10] [--warmup 3]
                                      [--out runs/cifar10n] [--jobs 1] [--append benchmarks/RESULTS.md]

The shared data has the CIFAR-10N labels as a CSV over the JPEG files (``../shared/data/cifar10n/labels.csv``:
``path, index, clean, aggre, worst, random1..3``), not the official ``CIFAR-10_human.pt``. This script writes that
file from the CSV (the official dict: ``clean_label``, ``aggre_label``, ``worse_label``, ``random_label1..3``, numpy
arrays in the original CIFAR order given by ``index``) into ``--out``, so the runs read labels exactly as a user's
official file is read: ``dataset.name=cifar10n``, ``options.images=folder``, ``options.index_file=labels.csv``.

Budget: a stratified ``--limit`` subset of the 50,000 training images, the width-16 small CNN, ``--epochs`` epochs,
batch 64, cosine lr from 0.02; PLReMix's schedule scaled into it (warm-up, λ_u ramp, κ milestones, EMA momenta), as
``cifar10jpg_methods.py`` does. The human labels are fixed, so the seeds vary only the initialisation and batch
order (``benchmarks/seeds.py``); mean ± std and the worst seed of the last-epoch test accuracy.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from seeds import run_seeds  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
COLUMNS = {"clean": "clean_label", "aggre": "aggre_label", "worst": "worse_label", "random1": "random_label1",
           "random2": "random_label2", "random3": "random_label3"}


def write_human_file(csv_path: Path, out: Path) -> Path:
    """``CIFAR-10_human.pt`` in the official format from the shared CSV; returns its path."""
    import torch

    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    index = np.array([int(r["index"]) for r in rows])
    train = index < 50_000 if len(rows) > 50_000 else np.ones(len(rows), bool)
    order = np.argsort(index[train])
    payload = {}
    for col, key in COLUMNS.items():
        values = np.array([int(r[col]) for r, keep in zip(rows, train) if keep])
        payload[key] = values[order]
    path = out / "CIFAR-10_human.pt"
    out.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=["worst", "aggre"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--limit", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("runs/cifar10n"))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--append", default=None)
    args = p.parse_args()
    human = write_human_file(SHARED / "cifar10n" / "labels.csv", args.out)
    common = [
        f"dataset.root={SHARED / 'cifar10-jpg'}",
        f"dataset.options={{images: folder, index_file: {SHARED / 'cifar10n' / 'labels.csv'}, human_file: {human}}}",
        "model.backbone=small_cnn", "model.width=16", f"dataset.train_limit={args.limit}",
        f"train.epochs={args.epochs}", "train.batch_size=64", "train.schedule=cosine",
        f"train.cosine_tmax={args.epochs}", "train.lr=0.02", "train.device=cpu", "log.report=false",
    ]
    plremix = [f"method.warmup_epochs={args.warmup}", f"method.rampup_length={max(args.epochs // 3, 1)}",
               f"method.kappa_milestones=[{args.warmup + 2},{args.warmup + 4}]", "method.proto_momentum=0.9",
               "method.semi_momentum=0.9"]
    for kind, extra in (("standard-ce", []), ("plremix", plremix)):
        presets = [f"{kind}-cifar10n-{s}" for s in args.sets]
        run_seeds(presets, ["preset"], seeds=args.seeds, jobs=args.jobs, threads=1, out=args.out / kind,
                  overrides=common + extra, append=args.append,
                  title=f"CIFAR-10N through the cifar10n source, {kind}, CPU budget")


if __name__ == "__main__":
    main()
