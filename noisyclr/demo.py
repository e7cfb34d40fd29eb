"""``make demo``: the embedded default, end to end on the CPU in under a minute.

Trains on scikit-learn's 8x8 digits with 50% symmetric label noise, once per method below (CE, the memorising
baseline, and PLReMix), and prints what it found on this CPU (model, logical CPUs, threads per run), then test
accuracy (last and best epoch), the precision/recall of PLReMix's clean set and wall times. Each run folder is kept
under ``runs/demo-<time>/`` (its ``config.yaml`` is the whole recipe; ``noisyclr train <preset> <overrides>``
with the overrides printed above the table repeats a run).

The runs are the presets plus the demo's overrides (:data:`DEMO_OVERRIDES`, measured in benchmarks/RESULTS.md):

* PLReMix: ``train.epochs=12`` (5 warm-up + 7 semi-supervised epochs): 98.2-98.6% already, ~99% after the
  preset's 40 (the digits presets train without flips: a mirrored digit is not the same digit);
* ``train.channels_last=true``: the small CNN runs ~20-25% faster in this layout on the CPU (other kernels: the
  figures differ from a contiguous-layout run in the last bits, not in their distribution);
* ``log.checkpoint_every``: one checkpoint, after the last epoch (the demo is never resumed);
* CE: ``method.track_memorisation=false`` (no per-epoch eval pass over the training set; CE's memorisation shows
  in its last vs best test accuracy).

With two or more logical CPUs the two runs go in parallel, one process each with ``cpus // 2`` torch threads
(``train.threads``): the tiny CNN gains only ~1.3x from a second thread, the two runs take about as long as each
other, and the two processes import torch side by side. With one CPU they run one after the other in this process.

Extra ``key=value`` arguments apply to both runs: ``python -m noisyclr.demo train.seed=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .config import load_config
from .errors import UserError
from .machine import available_cpus, cpu_model

DEMO_PRESETS = (
    ("CE", "standard-ce-digits-sym50"),
    ("PLReMix", "plremix-digits-sym50"),
)

# Demo settings on top of the presets (see the module docstring); command-line overrides come after them.
COMMON_OVERRIDES = ["train.device=cpu", "train.channels_last=true", "log.checkpoint_every=1000000"]
DEMO_OVERRIDES = {
    "CE": ["method.track_memorisation=false"],
    "PLReMix": ["train.epochs=12"],
}
_CHILD_FLAG = "--one-run"


def plan(cpus: int) -> tuple[bool, int]:
    """``(parallel, torch threads per run)`` for ``cpus`` logical CPUs."""
    if cpus >= len(DEMO_PRESETS):
        return True, max(1, cpus // len(DEMO_PRESETS))
    return False, max(1, cpus)


def run_overrides(label: str, threads: int, argv: list[str]) -> list[str]:
    """Every override of one demo run, in order (later ones win)."""
    return [*COMMON_OVERRIDES, f"train.threads={threads}", *DEMO_OVERRIDES[label], *argv]


def _one_run(preset: str, out_dir: str, overrides: list[str]) -> int:
    """A child process: one training run into ``out_dir`` (the parent reads its summary.json)."""
    from .engine import run_training

    try:
        run_training(load_config(preset, overrides), Path(out_dir))
    except UserError as exc:
        print(f"noisyclr: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run_parallel(jobs, threads: int) -> list[int]:
    """Start one child process per job, wait for all; their exit codes."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, str(threads))  # no library starts more threads than its share of the cores
    procs = []
    try:
        for label, preset, out_dir, overrides, _epochs in jobs:
            print(f"training {label} ({preset}) in a process of its own ...", flush=True)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "noisyclr.demo", _CHILD_FLAG, preset, str(out_dir), *overrides], env=env))
        return [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [_CHILD_FLAG]:
        return _one_run(argv[1], argv[2], argv[3:])
    t0 = time.perf_counter()
    root = Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    cpus = available_cpus()
    parallel, threads = plan(cpus)
    jobs = []
    try:
        for label, preset in DEMO_PRESETS:  # every override is checked before the first run starts
            overrides = run_overrides(label, threads, argv)
            if parallel:
                overrides.append("log.progress=off")  # two progress bars on one terminal would garble
            cfg = load_config(preset, overrides)
            jobs.append((label, preset, root / preset, overrides, cfg.train.epochs))
    except UserError as exc:
        print(f"noisyclr: error: {exc}", file=sys.stderr)
        return 2
    mode = f"{len(jobs)} processes in parallel" if parallel else "one run after the other"
    print(f"CPU: {cpu_model()}; {cpus} logical CPU(s) available: {mode}, {threads} torch thread(s) each", flush=True)
    for label, preset, _, overrides, _ in jobs:
        print(f"  {label}: noisyclr train {preset} {' '.join(overrides)}", flush=True)
    if parallel:
        codes = _run_parallel(jobs, threads)
        if any(codes):
            print(f"noisyclr: error: a demo run failed (exit codes {codes}); see its messages above", file=sys.stderr)
            return max(codes)
    else:
        from .engine import run_training

        try:
            for label, preset, out_dir, overrides, _ in jobs:
                print(f"training {label} ({preset}) ...", flush=True)
                run_training(load_config(preset, overrides), out_dir)
        except UserError as exc:
            print(f"noisyclr: error: {exc}", file=sys.stderr)
            return 2
    rows = []
    for label, preset, out_dir, _, epochs in jobs:
        s = json.loads((out_dir / "summary.json").read_text())
        rows.append((label, epochs, s["test_acc_last"], s["test_acc_best"], s.get("label_precision"),
                     s.get("label_recall"), s["wall_time_s"], s.get("torch", "")))
    cfg = load_config(jobs[-1][1], jobs[-1][3])
    print()
    print(f"digits (sklearn 8x8), {cfg.noise.kind} {cfg.noise.rate:.0%} label noise, train.seed {cfg.train.seed}, "
          f"small CNN; runs in {root}/")
    print(f"CPU: {cpu_model()} ({cpus} logical CPUs available); {mode}, {threads} torch thread(s) each; "
          f"torch {rows[0][-1]}")
    print(f"{'method':<10}{'epochs':>7}{'test acc last':>15}{'test acc best':>15}{'clean-set prec/rec':>20}"
          f"{'wall time':>11}")
    for label, epochs, last, best, prec, rec, wall, _ in rows:
        pr = f"{prec:.2f} / {rec:.2f}" if prec is not None else "-"
        print(f"{label:<10}{epochs:>7}{last:>15.2%}{best:>15.2%}{pr:>20}{wall:>10.1f}s")
    print(f"total {time.perf_counter() - t0:.1f} s (start-up, imports and data included; 'wall time' is a run's "
          f"training loop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
