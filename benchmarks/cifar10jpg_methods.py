"""CE vs DivideMix vs PLReMix on the CIFAR-10 JPEG folder with the reference 50% sym noise file, CPU budget.

    python benchmarks/cifar10jpg_methods.py [--epochs 12] [--warmup 4] [--limit 10000] [key=value ...]

Same small backbone, data subset, epochs and seed for every method; the paper schedules are scaled down to the
budget (warm-up, κ milestones, EMA momenta, λ_u ramp-up), and every such scaling is printed with the table.
Prints a Markdown table: test accuracy (last, best), precision/recall of the final labeled set, images/s, wall.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from noisyclr import api


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--limit", type=int, default=10000)
    p.add_argument("--methods", nargs="+", default=["standard-ce", "dividemix", "plremix"])
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    common = [
        "model.backbone=small_cnn",
        "model.width=16",
        f"dataset.train_limit={args.limit}",
        f"train.epochs={args.epochs}",
        "train.batch_size=64",
        "train.schedule=cosine",
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
    extra = {"standard-ce": [], "dividemix": semi, "plremix": semi + plr}
    print("common overrides:", " ".join(common))
    for m in args.methods:
        print(f"{m} overrides:", " ".join(extra[m]))
    root = Path(tempfile.mkdtemp(prefix="nc-c10m-"))
    print("| method | test acc last | best | label prec / rec | clean AUC | img/s | wall s |")
    print("|---|---|---|---|---|---|---|")
    for m in args.methods:
        run = api.train(f"{m}-cifar10jpg-sym50", common + extra[m], out_dir=root / m)
        s = run.summary
        pr = f"{s['label_precision']:.3f} / {s['label_recall']:.3f}" if s.get("label_precision") is not None else "-"
        auc = f"{s['clean_auc']:.3f}" if s.get("clean_auc") is not None else "-"
        print(f"| {m} | {s['test_acc_last']:.4f} | {s['test_acc_best']:.4f} | {pr} | {auc} | {s['images_per_s']:.0f} "
              f"| {s['wall_time_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
