"""CE vs DivideMix vs PLReMix vs BPT-PLR vs TCL on the CIFAR-10 JPEG folder with a reference noise file, CPU budget.

    python benchmarks/cifar10jpg_methods.py [--noise sym50|asym40] [--methods ...] [--epochs 12] [--warmup 4]
                                            [--limit 10000] [key=value ...]

Same small backbone, data subset, epochs and seed for every method; the paper schedules are scaled down to the
budget (warm-up, κ milestones, EMA momenta, λ_u ramp-up), and every such scaling is printed with the table.
Prints a Markdown table: test accuracy (last, best), precision/recall of the final labeled set, images/s, wall;
then, for the dividing methods, the per-class recall of the final labeled set (the quantity class-balanced
partitioning is meant to raise under asymmetric noise).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from noisyclr import api


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--limit", type=int, default=10000)
    p.add_argument("--methods", nargs="+", default=["standard-ce", "dividemix", "plremix"],
                   choices=["standard-ce", "dividemix", "plremix", "bpt_plr", "tcl"])
    p.add_argument("--noise", default="sym50", choices=["sym50", "asym40"])
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    common = [
        "model.backbone=small_cnn",
        "model.width=16",
        f"dataset.train_limit={args.limit}",
        f"train.epochs={args.epochs}",
        "train.batch_size=64",
        "train.schedule=cosine",
        f"train.cosine_tmax={args.epochs}",  # BPT-PLR's preset T_max 380 belongs to its 400-epoch schedule
        "train.device=cpu",
        *args.overrides,
    ]
    semi = [
        f"method.warmup_epochs={args.warmup}",
        f"method.rampup_length={max(args.epochs // 3, 1)}",
    ]
    plr = [
        f"method.kappa_milestones=[{args.warmup + 2},{args.warmup + 4}]",
        "method.proto_momentum=0.9",
        "method.semi_momentum=0.9",
    ]
    bpt = [
        f"method.kappa_milestones=[{args.warmup + 3}]",  # paper: 3 -> 2 at epoch 40 of 400
        "method.proto_momentum=0.9",
        "method.semi_momentum=0.9",
    ]
    # TCL keeps its recipe's shape (noisy-label warm-up, lr ramp from 0 over it, cosine after it, weight decay 1e-3,
    # 1/4 contrastive weight) at the common peak lr (its own 0.03 per 256 images would be 0.0075 at batch 64);
    # its warm-up_epochs counts from 1 (warmup + 1 -> `warmup` noisy-label epochs)
    tcl = [
        f"method.warmup_epochs={args.warmup + 1}",
        f"train.lr_warmup_epochs={args.warmup}",
        "train.lr_reference_batch=null",
        "train.lr=0.02",
        "train.eta_min=0",
        "method.knn_k=200",
    ]
    extra = {"standard-ce": [], "dividemix": semi, "plremix": semi + plr, "bpt_plr": semi + bpt, "tcl": tcl}
    print("common overrides:", " ".join(common))
    for m in args.methods:
        print(f"{m} overrides:", " ".join(extra[m]))
    root = Path(tempfile.mkdtemp(prefix="nc-c10m-"))
    print(f"noise: reference file {args.noise}")
    print("| method | test acc last | best | label prec / rec | clean AUC | img/s | wall s |")  # TCL: w > 0.5
    print("|---|---|---|---|---|---|---|")
    for m in args.methods:
        preset = f"{m}-cifar10jpg-{args.noise}"
        if m == "standard-ce" and args.noise != "sym50":
            preset = f"{m}-cifar10jpg-sym50"
            extra[m] = [f"noise.file=../shared/data/noise-files/cifar10/{noise_file(args.noise)}", "noise.rate=0.4"]
        run = api.train(preset, common + extra[m], out_dir=root / m)
        s = run.summary
        pr = f"{s['label_precision']:.3f} / {s['label_recall']:.3f}" if s.get("label_precision") is not None else "-"
        auc = f"{s['clean_auc']:.3f}" if s.get("clean_auc") is not None else "-"
        print(f"| {m} | {s['test_acc_last']:.4f} | {s['test_acc_best']:.4f} | {pr} | {auc} | {s['images_per_s']:.0f} "
              f"| {s['wall_time_s']:.0f} |", flush=True)

    recalls = {m: last_class_recall(root / m) for m in args.methods}
    recalls = {m: r for m, r in recalls.items() if r is not None}
    if recalls:
        classes = len(next(iter(recalls.values())))
        print("\nper-class recall of the final labeled set (clean samples of each class that were selected)")
        print("| method | " + " | ".join(str(c) for c in range(classes)) + " | mean | min |")
        print("|---|" + "---|" * (classes + 2))
        for m, r in recalls.items():
            defined = [v for v in r if v is not None]
            cells = " | ".join("-" if v is None else f"{v:.3f}" for v in r)
            print(f"| {m} | {cells} | {sum(defined) / len(defined):.3f} | {min(defined):.3f} |")


def noise_file(noise: str) -> str:
    """Reference file name of a ``--noise`` choice."""
    return {"sym50": "0.50.json", "asym40": "0.40_asym.json"}[noise]


def last_class_recall(run_dir: Path) -> list[float | None] | None:
    """``class_recall`` of the last epoch in ``metrics.jsonl`` that logged one (None: a method that does not divide)."""
    last = None
    with open(run_dir / "metrics.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("class_recall") is not None:
                last = row["class_recall"]
    return last


if __name__ == "__main__":
    main()
