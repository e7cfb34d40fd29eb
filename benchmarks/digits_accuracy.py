"""Digits accuracy table: CE vs DivideMix vs PLReMix (and any other preset) on the embedded 8x8 digits.

    python benchmarks/digits_accuracy.py [--presets a b ...] [--rates 0.5 0.8] [key=value ...]

Each preset runs once per noise rate on the CPU (one process, one run at a time: concurrent runs on 2 cores
distort wall times badly). Prints a Markdown table: last and best test accuracy, mean of the last 5 epochs,
precision/recall of the final labeled set (dividing methods), wall time.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from noisyclr import api

DEFAULT = ["standard-ce-digits-sym50", "dividemix-digits-sym50", "plremix-digits-sym50"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=DEFAULT)
    p.add_argument("--rates", nargs="+", type=float, default=[0.5])
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nc-digits-"))
    print("| preset | noise | test acc last | best | mean last 5 | label prec / rec | wall s |")
    print("|---|---|---|---|---|---|---|")
    for rate in args.rates:
        for preset in args.presets:
            out = root / f"{preset}-{rate}"
            run = api.train(preset, [f"noise.rate={rate}", "train.device=cpu", *args.overrides], out_dir=out)
            s, m = run.summary, run.metrics
            last5 = float(np.mean([r["test_acc"] for r in m[-5:]]))
            pr = (f"{s['label_precision']:.3f} / {s['label_recall']:.3f}" if s.get("label_precision") is not None else "-")
            print(f"| {preset} | {s['noise']['kind']} {rate:.0%} | {s['test_acc_last']:.4f} | {s['test_acc_best']:.4f} "
                  f"| {last5:.4f} | {pr} | {s['wall_time_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
