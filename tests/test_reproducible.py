"""A run's figures are a function of its config and seed on one machine (issue #11).

Not of the process (a fresh interpreter or one whose global RNGs were used before), the working directory, the run
folder's name or Python's hash seed. Across CPUs and thread counts float sums are ordered differently, so figures
there are compared as distributions over seeds (README "Reproducibility"), never bit for bit.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from noisyclr.config import load_config
from noisyclr.engine import run_training
from noisyclr.tracking import read_metrics
from tiny_runs import tiny_run

REPO = Path(__file__).resolve().parents[1]
TIMES = ("epoch_time_s", "train_time_s")
# PLReMix: the most stateful method (two nets, sklearn 2-D GMM, prototypes, adaptive threshold, MixMatch draws)
# train.threads is set: the thread count splits float reductions, so it is part of what must be the same (a test
# process may have changed torch's global thread count before this test runs)
ARGS = ["plremix-digits-sym50", *tiny_run(), "train.epochs=2", "method.warmup_epochs=1", "method.proj_dim=16",
        "train.threads=1"]


def _figures(run: Path):
    rows = [{k: v for k, v in r.items() if k not in TIMES} for r in read_metrics(run)]
    return rows, (run / "labels.csv").read_text()


def _cli(run: Path, cwd: Path, hashseed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hashseed,
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-m", "noisyclr", "train", *ARGS, "log.progress=off", "--out", str(run)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_metrics_depend_only_on_config_and_seed(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    _cli(tmp_path / "a", tmp_path, hashseed="1")
    _cli(tmp_path / "run b with another name", tmp_path / "elsewhere", hashseed="987")
    # in this process, after the global generators were used and reseeded arbitrarily
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    torch.rand(17), np.random.rand(3), random.random()
    run_training(load_config(ARGS[0], ARGS[1:]), tmp_path / "c")

    a, b, c = (_figures(tmp_path / name) for name in ("a", "run b with another name", "c"))
    assert a == b == c
    assert len(a[0]) == 2 and a[0][-1]["phase"] == "semi"
    # and the seed does matter: train.seed alone changes the figures
    other = run_training(load_config(ARGS[0], [*ARGS[1:], "train.seed=1"]), tmp_path / "e")
    assert _figures(tmp_path / "e") != a
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["seed"] == 0 and other.summary["seed"] == 1
