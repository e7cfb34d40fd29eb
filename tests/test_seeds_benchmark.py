"""benchmarks/seeds.py: the multi-seed runner's aggregation, seed mapping, skipping of finished runs, the cores
guard, failure reporting and the collapsed-run rule. Two tiny synthetic runs (2 epochs) are trained once."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import seeds  # noqa: E402

from noisyclr.errors import UserError  # noqa: E402

PRESET = "standard-ce-digits-sym50"
TINY = ["dataset.name=synthetic", "dataset.options={num_classes: 3, image_size: 8, train_size: 48, test_size: 24}",
        "train.epochs=2", "train.batch_size=16", "model.width=8", "train.device=cpu"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "out"
    t0 = time.monotonic()
    result = seeds.run_seeds([PRESET], ["sym50"], seeds=2, jobs=1, threads=1, out=out, overrides=TINY, echo=False)
    return out, result, time.monotonic() - t0


def test_aggregation_matches_run_folders(bench):
    out, result, _ = bench
    assert [r["status"] for r in result["runs"]] == ["trained", "trained"], result["runs"]
    (row,) = result["rows"]
    summaries = [json.loads((Path(d) / "summary.json").read_text()) for d in row["run_dirs"]]
    last = [s["test_acc_last"] for s in summaries]
    best = [s["test_acc_best"] for s in summaries]
    st = row["stats"]
    assert st["n"] == 2 and st["failed"] == 0
    assert st["last"]["mean"] == pytest.approx(statistics.mean(last))
    assert st["last"]["std"] == pytest.approx(statistics.stdev(last))  # sample std, ddof 1
    assert (st["last"]["min"], st["last"]["max"]) == (min(last), max(last))
    assert st["best"]["mean"] == pytest.approx(statistics.mean(best))
    assert st["best"]["std"] == pytest.approx(statistics.stdev(best))
    assert (st["best"]["min"], st["best"]["max"]) == (min(best), max(best))
    assert st["per_seed_last"].replace("*", "").split() == [f"{v:.3f}" for v in last]
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"][0]["stats"] == st and len(saved["runs"]) == 2
    for key in ("date", "cpu", "cores", "threads", "jobs", "torch", "commit", "command"):
        assert saved["header"][key] not in (None, ""), key
    md = result["markdown"]
    assert "collapsed: a run whose last-epoch" in md.lower() and seeds.TABLE_HEAD in md and "--seeds 2" in md


def test_seeds_vary_train_and_noise_seed(bench):
    _, result, _ = bench
    cfgs = [yaml.safe_load((Path(d) / "config.yaml").read_text()) for d in result["rows"][0]["run_dirs"]]
    assert [(c["train"]["seed"], c["noise"]["seed"]) for c in cfgs] == [(0, 123), (1, 124)]  # seed 0 = the preset
    assert all(c["noise"]["kind"] == "sym" and c["noise"]["rate"] == 0.5 for c in cfgs)
    assert all(c["train"]["threads"] == 1 and c["log"]["progress"] == "off" for c in cfgs)
    labels = [(Path(d) / "train_labels.csv").read_text() for d in result["rows"][0]["run_dirs"]]
    assert labels[0] != labels[1]  # a different noisy label set, not only a different init


def test_rerun_skips_finished_runs(bench):
    out, first, _ = bench
    dirs = [Path(d) for d in first["rows"][0]["run_dirs"]]
    before = {p: p.stat().st_mtime_ns for d in dirs for p in (d / "summary.json", d / "checkpoint.pt")}
    t0 = time.monotonic()
    again = seeds.run_seeds([PRESET], ["sym50"], seeds=2, jobs=1, threads=1, out=out, overrides=TINY, echo=False)
    assert time.monotonic() - t0 < 15  # nothing trained: no torch import, no subprocess
    assert [r["status"] for r in again["runs"]] == ["skipped", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert again["rows"][0]["stats"] == first["rows"][0]["stats"]
    # the same folder asked for with other settings is refused, not silently reused
    with pytest.raises(UserError, match="other settings.*train.epochs"):
        seeds.run_seeds([PRESET], ["sym50"], seeds=1, jobs=1, out=out, overrides=TINY + ["train.epochs=3"], echo=False)


def test_failed_run_is_reported(tmp_path):
    # the child refuses the missing dataset root (before torch is imported): reported, not dropped
    res = seeds.run_seeds([PRESET], ["sym50"], seeds=1, jobs=1, out=tmp_path / "o", echo=False,
                          overrides=["dataset.name=cifar10", f"dataset.root={tmp_path / 'missing'}"])
    (rec,) = res["runs"]
    assert rec["status"] == "failed" and rec["error"].startswith("exit 2: noisyclr: error:")
    st = res["rows"][0]["stats"]
    assert (st["n"], st["failed"], st["per_seed_last"]) == (0, 1, "fail")
    assert "failed:" in res["markdown"] and rec["error"] in res["markdown"]


def test_jobs_times_threads_over_cores_is_refused():
    cores = os.cpu_count()
    with pytest.raises(UserError, match="exceed"):
        seeds.resolve_jobs(cores + 1, 1)
    with pytest.raises(UserError, match="exceed"):
        seeds.resolve_jobs(1, cores + 1)
    assert seeds.resolve_jobs(None, 1) == cores
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "seeds.py"), "--presets", PRESET, "--jobs",
                           str(cores), "--threads", "2", *TINY], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "CPU cores" in proc.stderr


def test_noise_settings():
    assert seeds.noise_overrides("sym80", "digits") == ["noise.kind=sym", "noise.rate=0.8"]
    # digits has no asymmetric class map: asym means the pair flip c -> c+1
    assert seeds.noise_overrides("asym40", "digits") == ["noise.kind=asym", "noise.rate=0.4", "noise.asym_map=pairflip"]
    assert seeds.noise_overrides("asym40", "cifar10") == ["noise.kind=asym", "noise.rate=0.4"]
    assert seeds.noise_overrides("asym40", "digits", ["noise.asym_map=cifar10"]) == ["noise.kind=asym", "noise.rate=0.4"]
    assert seeds.noise_overrides("pairflip45", "cifar100")[1] == "noise.asym_map=pairflip"
    assert seeds.noise_overrides("preset", "digits") == []
    for bad in ("sym", "sym150", "gauss20"):
        with pytest.raises(UserError, match="unknown noise setting"):
            seeds.noise_overrides(bad, "digits")


def test_plan_reference_noise_rows(tmp_path):
    rows = seeds.plan([PRESET], ["sym50"], 3, tmp_path, TINY, reference_noise=True)
    varied, ref = rows
    assert [(r.train_seed, r.noise_seed) for r in varied.runs] == [(0, 123), (1, 124), (2, 125)]
    assert [(r.train_seed, r.noise_seed) for r in ref.runs] == [(0, 123), (1, 123), (2, 123)]
    assert ref.reference and varied.runs[0] is ref.runs[0]  # seed 0 is the same run: trained once
    # a noise file does not depend on noise.seed: one row, marked fixed, noise seed kept
    (row,) = seeds.plan(["standard-ce-cifar10jpg-sym50"], ["preset"], 2, tmp_path, reference_noise=True)
    assert row.noise_fixed and "(fixed)" in row.label and {r.noise_seed for r in row.runs} == {row.noise_seed0}


def _curve(level, epochs=20, climb_to=None):
    """A test-accuracy curve that reaches ``level`` (flat at the end), or climbs linearly to ``climb_to``."""
    if climb_to is not None:
        return [level + (climb_to - level) * k / (epochs - 1) for k in range(epochs)]
    return [0.3 + (level - 0.3) * min(1.0, k / 5) for k in range(epochs)]


def test_collapse_rule_on_hand_made_curves():
    good = [_curve(v) for v in (0.93, 0.94, 0.95, 0.935)]
    stuck = _curve(0.55)  # the PLReMix digits 80% case: flat at 55% while the others reach ~93%
    assert seeds.collapsed_flags(good + [stuck]) == [False] * 4 + [True]
    assert seeds.collapsed_flags([_curve(0.93), stuck]) == [False, True]  # 2 seeds: stuck and far below the best
    # most seeds collapsed: the median is itself collapsed, the stalled-and-far-below-best test still flags them
    assert seeds.collapsed_flags([_curve(0.55), _curve(0.56), _curve(0.55), _curve(0.93)]) == [True, True, True, False]
    # far below the best but still climbing, with the median near it: slow, not collapsed
    slow = _curve(0.60, climb_to=0.83)
    assert seeds.collapsed_flags([_curve(0.93), _curve(0.93), slow, _curve(0.90)]) == [False] * 4
    # ... but stalled 13 points below the best run is collapsed
    assert seeds.collapsed_flags([_curve(0.93), _curve(0.93), slow, _curve(0.80)]) == [False, False, False, True]
    # a noisy, non-stalled run far below the median is an outlier all the same
    wobbly = [0.5 + 0.03 * (k % 2) for k in range(20)]
    assert seeds.collapsed_flags([_curve(0.93), _curve(0.93), wobbly]) == [False, False, True]
    # all seeds equally bad (e.g. CE memorising): nothing to compare against, nothing flagged
    assert seeds.collapsed_flags([_curve(0.52), _curve(0.53), _curve(0.51)]) == [False] * 3
    assert seeds.collapsed_flags([stuck]) == [False]  # one run flags nothing
    assert seeds.stalled([0.5, 0.5, 0.5, 0.9, 0.9, 0.902])  # window: last max(2, ceil(25% of 6)) = 2 epochs
    assert not seeds.stalled([0.9, 0.91]) and not seeds.stalled([0.5])


def test_aggregate_pure():
    recs = [
        {"status": "trained", "test_acc_last": 0.95, "test_acc_best": 0.96, "test_acc_curve": _curve(0.95),
         "label_precision": 0.9, "label_recall": 0.8, "error": None},
        {"status": "failed", "error": "exit 1: RuntimeError: boom"},
        {"status": "skipped", "test_acc_last": 0.55, "test_acc_best": 0.56, "test_acc_curve": _curve(0.55),
         "label_precision": 0.7, "label_recall": None, "error": None},
        {"status": "trained", "test_acc_last": 0.94, "test_acc_best": 0.95, "test_acc_curve": _curve(0.94),
         "label_precision": None, "label_recall": 0.6, "error": None},
    ]
    a = seeds.aggregate(recs)
    assert (a["n"], a["failed"], a["collapsed"]) == (3, 1, 1)
    assert a["per_seed_last"] == "0.950 fail 0.550* 0.940"
    assert a["last"]["mean"] == pytest.approx(statistics.mean([0.95, 0.55, 0.94]))
    assert a["last"]["std"] == pytest.approx(statistics.stdev([0.95, 0.55, 0.94]))
    assert (a["best"]["min"], a["best"]["max"]) == (0.56, 0.96)
    assert a["label_precision"] == pytest.approx(0.8) and a["label_recall"] == pytest.approx(0.7)
    assert a["errors"] == ["exit 1: RuntimeError: boom"]
    one = seeds.aggregate(recs[:1])
    assert one["last"]["std"] is None
    assert "±" not in seeds.table([{"preset": "p", "label": "l", "stats": one}]).splitlines()[2]
