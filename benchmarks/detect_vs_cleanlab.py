"""noisyclr detect vs cleanlab on the same noisy labels, backbone and CPU budget (issue #15).

    python benchmarks/detect_vs_cleanlab.py [--settings digits-sym50 digits-sym80 c10n-worst c10n-aggre]
                                            [--seeds 3] [--folds 5] [--method dividemix] [key=value ...]

cleanlab (a benchmark dependency only: ``pip install cleanlab``) gets what its documentation asks for: K-fold
out-of-fold predicted probabilities of a CE model (the ``standard-ce`` preset of the setting, one noisyclr run per
fold on the other K-1 folds, predicting the held-out fold with the test view), then ``find_label_issues`` (the
flagged set; its default ``prune_by_noise_rate``) and ``get_label_quality_scores`` (the ranking; its default
``self_confidence``). noisyclr trains the setting's ``--method`` preset once on all the data and runs
``noisyclr detect`` on it (score ``auto``, threshold 0.5). Both see the same noisy labels (the same ``noise.seed``),
the same backbone and the same training recipe per run; the wall time of each side is printed with the table.

Scores against the truly wrong labels: AUC and average precision of the ranking (cleanlab: 1 − quality score;
noisyclr: p_wrong), precision / recall / F1 of the flagged set. Mean ± std over the seeds, and the worst seed.

Settings: ``digits-symNN`` (the 8x8 digits presets, DivideMix's sym generator), ``c10n-worst`` / ``c10n-aggre``
(the ``cifar10n`` source over the CIFAR-10 JPEG folder with the CIFAR-10N human labels of
../shared/data/cifar10n/labels.csv, the presets ``standard-ce-cifar10n-*`` / ``<method>-cifar10n-*``, a stratified
``--c10-limit`` subset, a 2,000-image test subset, the width-16 small CNN, ``--c10-epochs`` epochs with a cosine
lr: the CPU budget; the dividing methods' warm-up and ramp-up, and PLReMix's κ milestones and EMA momenta, scaled
into it).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from noisyclr import api  # noqa: E402
from noisyclr.config import load_config  # noqa: E402
from noisyclr.detect import detection_scores  # noqa: E402


def setting_overrides(name: str, args) -> tuple[str, str, list[str], list[str]]:
    """(CE preset, noisyclr preset, overrides both share, overrides of the noisyclr method only) of a setting."""
    if name.startswith("digits-sym"):
        rate = int(name.removeprefix("digits-sym")) / 100
        return "standard-ce-digits-sym50", f"{args.method}-digits-sym50", [f"noise.rate={rate}"], []
    if name in ("c10n-worst", "c10n-aggre"):
        column = name.split("-")[1]
        # the cifar10n source over the JPEG folder, with the official-format CIFAR-10_human.pt written from the
        # shared CSV (benchmarks/cifar10n_cpu.py)
        from cifar10n_cpu import SHARED, write_human_file

        human = write_human_file(SHARED / "cifar10n" / "labels.csv", args.human_dir)
        common = [f"dataset.root={SHARED / 'cifar10-jpg'}",
                  f"dataset.options={{images: folder, index_file: {SHARED / 'cifar10n' / 'labels.csv'}, "
                  f"human_file: {human}}}",
                  f"dataset.train_limit={args.c10_limit}", "dataset.test_limit=2000",
                  "model.backbone=small_cnn", "model.width=16", f"train.epochs={args.c10_epochs}",
                  f"train.cosine_tmax={args.c10_epochs}", "train.batch_size=64", "train.schedule=cosine",
                  "train.lr=0.02"]
        common_m = []
        warm = max(args.c10_epochs // 4, 1)
        if args.method in ("dividemix", "plremix", "bpt_plr"):
            common_m = [f"method.warmup_epochs={warm}", f"method.rampup_length={max(args.c10_epochs // 3, 1)}"]
        if args.method in ("plremix", "bpt_plr"):  # the schedule scaled into the budget (cifar10jpg_methods.py)
            common_m += [f"method.kappa_milestones=[{warm + 2},{warm + 4}]", "method.proto_momentum=0.9",
                         "method.semi_momentum=0.9"]
        return (f"standard-ce-cifar10n-{column}", f"{args.method}-cifar10n-{column}", common, common_m)
    raise SystemExit(f"unknown setting {name}")


def oof_probabilities(preset: str, overrides: list[str], folds: int, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray, float]:
    """(given labels, true labels, out-of-fold softmax probabilities (N, C), wall s) of K noisyclr CE runs."""
    import torch

    from noisyclr.data.prepare import prepare_data
    from noisyclr.engine import build_context, seed_everything
    from noisyclr.methods import get_method

    cfg = load_config(preset, overrides + ["train.device=cpu", "log.progress=off", "log.report=false"])
    t0 = time.perf_counter()
    data = prepare_data(cfg)
    n = len(data.train.labels)
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(np.arange(n) % folds)
    probs = np.zeros((n, data.train.num_classes))
    for k in range(folds):
        held = np.flatnonzero(fold_of == k)
        rest = np.flatnonzero(fold_of != k)
        fold = dataclasses.replace(data, train=data.train.subset(rest), test=data.train.subset(held))
        seed_everything(cfg.train.seed + k)
        ctx = build_context(cfg, fold, torch.device("cpu"))
        method = get_method("standard")(cfg, ctx)
        for epoch in range(cfg.train.epochs):
            method.train_epoch(epoch)
        (logits,) = ctx.eval_logits(method.nets, ctx.test)
        probs[held] = torch.softmax(logits, 1).numpy()
    return data.train.labels, data.train.true_labels, probs, time.perf_counter() - t0


def run_cleanlab(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    """(flagged mask, wrongness score) from cleanlab's defaults."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    flagged = find_label_issues(labels, probs)
    quality = get_label_quality_scores(labels, probs)
    return np.asarray(flagged, dtype=bool), 1.0 - np.asarray(quality)


def load_summary(run: Path) -> dict:
    import json

    return json.loads((run / "summary.json").read_text())


def fmt(values: list[float]) -> str:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f} ({min(values):.3f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="+", default=["digits-sym50", "digits-sym80"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--method", default="dividemix")
    p.add_argument("--c10-limit", type=int, default=5000)
    p.add_argument("--c10-epochs", type=int, default=10)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--ce-baseline", action="store_true",
                   help="also train the CE preset on all rows: its test accuracy and noisyclr detect on it")
    p.add_argument("--human-dir", type=Path, default=Path("runs/cifar10n"),
                   help="where the c10n settings write CIFAR-10_human.pt (default: %(default)s)")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="nc-detect-"))
    print(f"runs under {root}; cleanlab {__import__('cleanlab').__version__}, {args.folds}-fold CE; noisyclr "
          f"{args.method} + detect (score auto)")
    print("| setting | tool | n | AUC | average precision | precision | recall | F1 | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.settings:
        ce_preset, nc_preset, common, method_extra = setting_overrides(name, args)
        results = {"cleanlab": [], "noisyclr": []}
        if args.ce_baseline:
            results["noisyclr-ce"] = []
        test_acc = {"noisyclr": [], "noisyclr-ce": []}
        for s in range(args.seeds):
            seeds = [f"train.seed={s}", f"noise.seed={123 + s}", "train.threads=1", *args.overrides]
            labels, true, probs, wall = oof_probabilities(ce_preset, common + seeds, args.folds, s)
            t0 = time.perf_counter()
            flagged, score = run_cleanlab(labels, probs)
            wall += time.perf_counter() - t0
            results["cleanlab"].append({**detection_scores(score, flagged, labels != true), "wall": wall})
            t0 = time.perf_counter()
            out = root / f"{name}-{args.method}-s{s}"
            api.train(nc_preset, common + method_extra + seeds + ["train.device=cpu", "log.progress=off",
                                                                  "log.report=false"], out_dir=out)
            issues = api.detect(out)
            wall = time.perf_counter() - t0
            results["noisyclr"].append({**issues.summary["detection"], "wall": wall})
            test_acc["noisyclr"].append(load_summary(out)["test_acc_last"])
            if args.ce_baseline:  # CE on all rows: its test accuracy, and detect on its loss history
                t0 = time.perf_counter()
                out = root / f"{name}-standard-ce-s{s}"
                api.train(ce_preset, common + seeds + ["train.device=cpu", "log.progress=off", "log.report=false"],
                          out_dir=out)
                issues = api.detect(out)
                results["noisyclr-ce"].append({**issues.summary["detection"], "wall": time.perf_counter() - t0})
                test_acc["noisyclr-ce"].append(load_summary(out)["test_acc_last"])
            for tool in results:  # per seed as it ends: a long benchmark cut short still leaves its figures
                r = results[tool][-1]
                print(f"# {name} seed {s} {tool}: " + " ".join(f"{k} {r[k]:.3f}" for k in
                      ("auc", "average_precision", "precision", "recall", "f1", "wall")), flush=True)
        for tool, accs in test_acc.items():
            if accs:
                print(f"# {name} {tool} test accuracy (last epoch): {fmt(accs)} over {len(accs)} seeds", flush=True)
        for tool, rows in results.items():
            cells = [fmt([r[k] for r in rows]) for k in ("auc", "average_precision", "precision", "recall", "f1")]
            print(f"| {name} | {tool} | {len(rows)} | " + " | ".join(cells)
                  + f" | {statistics.fmean(r['wall'] for r in rows):.0f} |", flush=True)


if __name__ == "__main__":
    main()
