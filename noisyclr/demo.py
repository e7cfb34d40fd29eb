"""``make demo``: the embedded default, end to end on the CPU in about a minute.

Trains on scikit-learn's 8x8 digits with 50% symmetric label noise, once per method below (CE, the memorising
baseline, and PLReMix), and prints test accuracy (last and best epoch), the precision/recall of PLReMix's
clean set, and wall time. Each run folder is kept under ``runs/demo-<time>/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .config import load_config
from .engine import run_training
from .errors import UserError

DEMO_PRESETS = (
    ("CE", "standard-ce-digits-sym50"),
    ("PLReMix", "plremix-digits-sym50"),
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    rows = []
    try:
        for label, preset in DEMO_PRESETS:
            cfg = load_config(preset, ["train.device=cpu", *argv])
            print(f"training {label} ({preset}) ...", flush=True)
            result = run_training(cfg, root / preset)
            s = result.summary
            pr = s.get("label_precision"), s.get("label_recall")
            rows.append((label, s["test_acc_last"], s["test_acc_best"], pr, s["wall_time_s"]))
    except UserError as exc:
        print(f"noisyclr: error: {exc}", file=sys.stderr)
        return 2
    noise = f"{cfg.noise.kind} {cfg.noise.rate:.0%}"
    print()
    print(f"digits (sklearn 8x8), {noise} label noise, {cfg.train.epochs} epochs, CPU; runs in {root}/")
    print(f"{'method':<10}{'test acc last':>15}{'test acc best':>15}{'clean-set prec/rec':>20}{'wall time':>11}")
    for label, last, best, (prec, rec), wall in rows:
        pr = f"{prec:.2f} / {rec:.2f}" if prec is not None else "-"
        print(f"{label:<10}{last:>15.2%}{best:>15.2%}{pr:>20}{wall:>10.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
