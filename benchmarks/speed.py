"""Speed of the pieces of a DivideMix-family epoch, and the projected time of the full paper recipe (issue #4).

    python benchmarks/speed.py [--methods dividemix plremix] [--variants fp32 fast] [--batch-sizes 64 128]
                               [--backbone preact_resnet18] [--limit 5000] [--device auto] [--profile]
                               [--append benchmarks/RESULTS.md] [key=value ...]

For every (method, batch size, variant) it builds the run exactly as ``noisyclr train`` would (preset
``<method>-<dataset>`` + overrides, training set cut to ``--limit`` rows), then times, each after one untimed
run of the same thing (compilation, cuDNN autotuning, allocator warm-up):

* the warm-up epoch of one net (CE on all rows, batch 2B for DivideMix/PLReMix);
* a division of one net, and the logits-only eval pass over the training set alone; "div − eval" is the rest of
  the division: the GMM fit and, for PLReMix/BPT-PLR, the projection head and prototype logits;
* a semi-supervised epoch of one net on that division (MixMatch; PLR for PLReMix/BPT-PLR).

Reported per row: images/s and ms per step of each phase, seconds per epoch at ``--limit`` rows, peak memory, and
the projected wall time of the preset's full recipe on ``--full-size`` rows (CIFAR-10: 50,000):

    T = W·2·t_warm(N) + (E − W)·2·(t_div(N) + steps_semi(N)·t_step)

with W warm-up and E total epochs of the preset, times scaled linearly in rows, and ``steps_semi`` one pass over the
labeled set (its fraction as measured here) for DivideMix/PLReMix, N/B + 1 for BPT-PLR's oversampled epoch.
Evaluation of the test set (one eval pass of 10k rows per epoch) is added. The projection is the recipe at the
timed batch size, with the labeled fraction of this short run; peak memory is the GPU's peak per row, or on the
CPU the process's peak resident set so far (a running maximum over the rows).

Variants: ``fp32`` (plain: fp32, NCHW, no compile, for-loop/foreach SGD, sklearn GMM) and ``fast`` (bf16 autocast and
``torch.compile`` on CUDA, channels_last, fused SGD, GMM on the device). ``--profile`` prints the top operators of
a few semi-supervised steps (torch.profiler), naming the largest remaining cost.
"""

from __future__ import annotations

import argparse
import datetime
import resource
import subprocess
import time
from pathlib import Path

import torch

from noisyclr.config import load_config
from noisyclr.context import resolve_device
from noisyclr.data.prepare import prepare_data
from noisyclr.engine import build_context, seed_everything
from noisyclr.methods import get_method

VARIANTS = {
    "fp32": ["train.precision=fp32", "train.channels_last=false", "train.compile=false",
             "train.fused_optimizer=false", "method.gmm_backend=sklearn"],
    "fast": ["train.channels_last=true", "train.fused_optimizer=true", "method.gmm_backend=torch"],
    "fast_cuda": ["train.precision=bf16", "train.compile=true"],  # added to "fast" on CUDA
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """``(result, seconds)`` of ``fn()``, with the device synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA), else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure(preset: str, overrides: list[str], full_size: int, profile: bool) -> dict:
    """Build the run and time warm-up epoch, division (eval + GMM) and semi epoch of net 1."""
    cfg = load_config(preset, overrides)
    torch._dynamo.reset()  # each configuration compiles afresh (no recompile-limit fallback to eager across rows)
    device = resolve_device(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    data = prepare_data(cfg)
    ctx = build_context(cfg, data, device)
    method = get_method(cfg.method.name)(cfg, ctx)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n = len(ctx.train)
    bs = cfg.train.batch_size
    warm_bs = getattr(cfg.method, "warmup_batch_size", None) or 2 * bs

    method.warmup(0, 0)  # untimed: compilation and allocator warm-up
    out, t_warm = timed(lambda: method.warmup(0, 0), device)
    warm_steps = ctx.train.num_batches(warm_bs)
    method.warmup(1, 0)  # untimed: net 2 gets a warm-up too, so its division (net 1's semi epoch) means something

    epoch = cfg.method.warmup_epochs
    method.divide(0, epoch)
    method.divide(1, epoch)  # untimed warm-up; also gives net 2's division for the semi epoch
    (logits,), t_eval = timed(lambda: ctx.eval_logits([method.nets[0]], ctx.train), device)
    prob, t_div = timed(lambda: method.divide(0, epoch), device)
    if hasattr(method, "init_prototypes"):
        method.init_prototypes()
    peer_prob = method.last_division[1]
    labeled_frac = float(method.labeled_mask(peer_prob).float().mean())

    method.train_semi(0, 1, peer_prob, epoch)  # untimed
    semi, t_semi = timed(lambda: method.train_semi(0, 1, peer_prob, epoch), device)
    oversample = getattr(cfg.method, "oversample", False)
    drop_last = getattr(cfg.method, "drop_last", False)
    # the steps of the plan train_semi just walked (the loop's own count, oversampled or one labeled pass)
    semi_steps = len(method.semi_plan(*method.split(peer_prob), ctx.views(method.semi_views)))
    ms_step = 1000 * t_semi / max(semi_steps, 1)

    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with torch_profile(activities=acts) as prof:
            method.train_semi(0, 1, peer_prob, epoch)
            sync(device)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=15), flush=True)

    # full recipe of the preset (without the speed overrides' epochs), rows scaled to full_size
    full = load_config(preset, [])
    E, W = full.train.epochs, full.method.warmup_epochs
    scale = full_size / n
    full_semi_steps = (full_size // bs + 1 if oversample
                       else ctx.train.num_batches(bs, int(labeled_frac * full_size), drop_last=drop_last))
    test_eval = t_eval * 10000 / n
    projected = (W * 2 * t_warm * scale + (E - W) * 2 * (t_div * scale + full_semi_steps * ms_step / 1000)
                 + E * test_eval * 2)
    return {
        "rows": n,
        "warm_img_s": out["images"] / t_warm,
        "warm_ms_step": 1000 * t_warm / max(warm_steps, 1),
        "warm_s": t_warm,
        "eval_s": t_eval,
        "gmm_s": max(t_div - t_eval, 0.0),
        "semi_img_s": semi["images"] / t_semi,
        "semi_ms_step": ms_step,
        "semi_s": t_semi,
        "labeled_frac": labeled_frac,
        "peak_gib": peak_memory_gib(device),
        "projected_min": projected / 60,
        "recipe": f"{E} ep ({W} warm-up)",
        "device": device,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=["dividemix"])
    p.add_argument("--dataset", default="cifar10jpg-sym50", help="preset suffix: <method>-<dataset>")
    p.add_argument("--variants", nargs="+", default=["fp32", "fast"], choices=["fp32", "fast"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64])
    p.add_argument("--backbone", default="small_cnn")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--limit", type=int, default=1024, help="training rows to time on")
    p.add_argument("--full-size", type=int, default=50000, help="training rows of the projected full run")
    p.add_argument("--device", default="auto")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--append", default=None, help="append the table to this Markdown file (e.g. RESULTS.md)")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    header = ("| method | backbone | batch | variant | warm-up img/s | warm-up ms/step | eval s | div − eval s | semi img/s "
              "| semi ms/step | semi s/epoch | labeled | peak GiB | projected full run |")
    rows = []
    device = None
    for method in args.methods:
        for bs in args.batch_sizes:
            for variant in args.variants:
                device = resolve_device(args.device)
                extra = VARIANTS[variant] + (VARIANTS["fast_cuda"] if variant == "fast" and device.type == "cuda" else [])
                overrides = [f"model.backbone={args.backbone}", f"train.batch_size={bs}",
                             f"dataset.train_limit={args.limit}", f"train.device={args.device}", *extra,
                             *([f"model.width={args.width}"] if args.width else []), *args.overrides]
                r = measure(f"{method}-{args.dataset}", overrides, args.full_size, args.profile)
                rows.append(
                    f"| {method} | {args.backbone}{'' if not args.width else f' w{args.width}'} | {bs} | {variant} "
                    f"| {r['warm_img_s']:.0f} | {r['warm_ms_step']:.1f} | {r['eval_s']:.2f} | {r['gmm_s']:.2f} "
                    f"| {r['semi_img_s']:.0f} | {r['semi_ms_step']:.1f} | {r['semi_s']:.1f} | {r['labeled_frac']:.2f} "
                    f"| {r['peak_gib']:.2f} | {r['projected_min']:.0f} min ({r['recipe']}) |"
                )
                print(rows[-1], flush=True)
    stamp = (f"{datetime.date.today().isoformat()} · {device_name(device)} · torch {torch.__version__} · "
             f"commit {commit}{' (+local changes)' if dirty else ''} · {args.limit} rows timed, projected to "
             f"{args.full_size}")
    table = "\n".join([stamp, "", header, "|" + "---|" * 14, *rows])
    print("\n" + table)
    if args.append:
        with open(Path(args.append), "a") as handle:
            handle.write(f"\n#### benchmarks/speed.py {' '.join(args.overrides)}\n\n{table}\n")


if __name__ == "__main__":
    main()
