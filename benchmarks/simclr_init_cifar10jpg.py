"""SimCLR init vs random init under heavy label noise, CIFAR-10 JPEG folder, CPU budget (issue #5; Ghosh & Lan).

    python benchmarks/simclr_init_cifar10jpg.py [--limit 10000] [--pretrain-epochs 20] [--epochs 15]
                                                [--width 16] [--losses ce gce] [--inits simclr random]
                                                [key=value ...]

1. SimCLR-pretrains the small CNN (``simclr-cifar10jpg-small``) on the first ``--limit`` training images without
   labels, batch 256, LARS lr 1.0 (the preset's 2.0 at batch 512, scaled linearly), ``--pretrain-epochs`` epochs.
2. Fine-tunes it with each loss (``standard-{ce,gce}-simclr-cifar10jpg-small-sym80``: the reference 80% sym noise
   file, one learning rate, no decay on BN, warm-up + cosine per step, 1,000 clean held-out samples) from the
   SimCLR encoder and from a random init, same data, epochs and seed.

The trailing ``key=value`` overrides reach every run (pretraining and fine-tuning), e.g. ``train.threads=1``.
Prints a Markdown table: test accuracy (last, best, at the best clean-validation epoch), wall time of each stage.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from noisyclr import api


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--limit", type=int, default=10000)
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--losses", nargs="+", default=["ce", "gce"], choices=["ce", "gce"])
    p.add_argument("--inits", nargs="+", default=["simclr", "random"], choices=["simclr", "random"],
                   help="random init does not depend on the pretraining budget: skip it when re-running with another")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    common = [f"model.width={args.width}", f"dataset.train_limit={args.limit}", "train.device=cpu", *args.overrides]
    root = Path(tempfile.mkdtemp(prefix="nc-simclr-"))
    pre = common + [f"train.epochs={args.pretrain_epochs}", "train.batch_size=256", "train.lr=1.0",
                    "method.knn_every=5"]
    print("pretrain overrides:", " ".join(pre), flush=True)
    run, encoder, _card = api.pretrain("simclr-cifar10jpg-small", pre, out_dir=root / "pretrain")
    s = run.summary
    print(f"SimCLR: k-NN test accuracy {s['test_acc_last']:.4f}, wall {s['wall_time_s']:.0f} s, "
          f"{s['images_per_s']:.0f} img/s", flush=True)
    tune = common + [f"train.epochs={args.epochs}"]
    print("fine-tune overrides:", " ".join(tune), flush=True)
    print("| loss | init | test acc last | best | at best val | val acc best | wall s |")
    print("|---|---|---|---|---|---|---|")
    for loss in args.losses:
        for init in args.inits:
            extra = [f"model.init={encoder}" if init == "simclr" else "model.init=null"]
            res = api.train(f"standard-{loss}-simclr-cifar10jpg-small-sym80", tune + extra,
                            out_dir=root / f"{loss}-{init}").summary
            print(f"| {loss} | {init} | {res['test_acc_last']:.4f} | {res['test_acc_best']:.4f} "
                  f"| {res.get('test_acc_at_best_val', float('nan')):.4f} | {res.get('val_acc_best', float('nan')):.4f} "
                  f"| {res['wall_time_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
