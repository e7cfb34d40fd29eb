"""CIFAR-10 JPEG folder on the CPU: first and second start (decode cache) and training images/s.

    python benchmarks/cifar10jpg_cpu.py [--root ../shared/data/cifar10-jpg] [--epochs 1] [key=value ...]

Prints one Markdown table row per measurement, to paste into benchmarks/RESULTS.md. The cold start uses a fresh
cache folder, so it includes decoding every JPEG; the warm start reads the cache written by the cold one.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from noisyclr import api
from noisyclr.data.sources import load_dataset


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", default="../shared/data/cifar10-jpg")
    p.add_argument("--preset", default="standard-ce-cifar10jpg-sym50")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()

    cache = Path(tempfile.mkdtemp(prefix="nc-bench-cache-"))
    try:
        t0 = time.perf_counter()
        load_dataset("folder", args.root, cache_dir=str(cache))
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        splits = load_dataset("folder", args.root, cache_dir=str(cache))
        warm = time.perf_counter() - t0
        print(f"| folder load, cold (decode {len(splits.train) + len(splits.test)} JPEGs) | {cold:.1f} s |")
        print(f"| folder load, warm (cache) | {warm:.2f} s |")

        out = Path(tempfile.mkdtemp(prefix="nc-bench-run-")) / "run"
        overrides = [
            f"dataset.root={args.root}",
            f"dataset.cache_dir={cache}",
            f"train.epochs={args.epochs}",
            "train.device=cpu",
            *args.overrides,
        ]
        t0 = time.perf_counter()
        run = api.train(args.preset, overrides, out_dir=out)
        total = time.perf_counter() - t0
        s = run.summary
        print(
            f"| train {args.preset} {' '.join(args.overrides)} | {s['epochs']} ep, {s['images_per_s']:.0f} img/s, "
            f"epoch {run.metrics[-1]['epoch_time_s']:.1f} s, test acc last {s['test_acc_last']:.4f}, "
            f"clean_auc {run.metrics[-1].get('clean_auc', float('nan')):.3f}, process {total:.1f} s |"
        )
        print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
