"""benchmarks/gpu_check.sh (the prepared one-call GPU check) must not rot: its --smoke run does every step at toy
size on the CPU; the commands of the GPU profile must be valid configs; the budget machinery must stop a process
on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402
import pack_cifar10  # noqa: E402

METHODS = ("standard", "dividemix", "plremix", "bpt_plr", "tcl", "simclr", "mwnet")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check_out")
    work = tmp_path_factory.mktemp("gpu_check_work")
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_WORK": str(work)}
    env.pop("OUT", None)
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--smoke", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=400)
    return proc, out, time.monotonic() - t0


def test_smoke_runs_every_step(smoke):
    proc, out, seconds = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(gpu_check.OUT_FILES)
    md = (out / "gpu_check.md").read_text()
    state = json.loads((out / "gpu_check.json").read_text())
    rows = {r["name"]: r for r in state["methods"]}
    for name in METHODS:
        assert rows[name]["status"] == "ok", rows[name]
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} | "))
        assert "| ok |" in line, line
        assert len(rows[name]["test_acc"]) == 2
    assert "init from simclr encoder" in rows["mwnet"]["note"]
    speed_rows = [ln for ln in md.splitlines() if ln.startswith("| dividemix | small_cnn")]
    assert len(speed_rows) == 4, md  # batch 16 and 32, fp32 and fast
    assert all("min (300 ep (10 warm-up))" in ln for ln in speed_rows)
    assert state["acc"]["status"] == "ok" and len(state["acc"]["rows"]) == 3
    assert {k: v["status"] for k, v in state["steps"].items()} == {
        "data": "ok", "env": "ok", "methods": "ok", "speed": "ok", "acc": "ok"}
    assert "SMOKE RUN" in md and "### 1. Environment" in md and "import noisyclr" in md
    print(f"smoke run: {seconds:.1f} s")


def test_gpu_profile_commands_are_valid_configs(tmp_path):
    """Every command the GPU run would start resolves to a valid config (unknown keys, types, choices)."""
    from noisyclr.config import load_config

    import speed

    data = [f"dataset.root={tmp_path}/cifar10-jpg"]
    noise = [f"noise.file={tmp_path}/0.50.json", f"noise.order_file={tmp_path}/labels.csv"]
    jobs = gpu_check.method_jobs(gpu_check.GPU, data, noise, tmp_path / "runs")
    assert {j["name"] for j in jobs} >= set(METHODS)
    for job in jobs:
        argv = ["model.init=null" if a == "model.init=@ENCODER" else a for a in job["argv"]]
        cfg = load_config(argv[1], argv[2:])
        assert cfg.train.device == "cuda" and cfg.train.compile and cfg.train.precision == "bf16"
        # TCL runs on its own variant with the final BN (its published backbone)
        assert cfg.model.backbone == ("preact_resnet18_bn" if job["name"] == "tcl" else "preact_resnet18")
    p = gpu_check.GPU["speed"]
    for batches, variants, _ in p["groups"]:
        for bs in batches:
            for variant in variants:
                extra = speed.VARIANTS[variant] + (speed.VARIANTS["fast_cuda"] if variant == "fast" else [])
                load_config(f"{p['methods'][0]}-cifar10jpg-sym50",
                            [f"model.backbone={p['backbone']}", f"train.batch_size={bs}",
                             f"dataset.train_limit={p['limit']}", "train.device=cuda", *extra, *data, *noise])
    a = gpu_check.GPU["acc"]
    load_config(a["preset"], ["train.device=cuda", *gpu_check.GPU["fast"], "method.gmm_backend=torch", *data, *noise,
                              "log.progress=off", *a["extra"]])


def test_budget_stops_a_process_and_its_group(tmp_path):
    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    t0 = time.monotonic()
    proc = gpu_check.Proc("sleeper", [sys.executable, "-c", child], tmp_path / "sleeper.log", budget=1.0).wait()
    assert proc.timed_out and proc.rc is not None
    assert time.monotonic() - t0 < 15
    assert "timed out after" in (tmp_path / "sleeper.log").read_text()


def test_pack_roundtrip_is_bit_identical(tmp_path):
    src = tmp_path / "src"
    gpu_check.write_standin(src, 3, 2)
    m = pack_cifar10.pack(src, tmp_path / "p.pack", extra=["noise-files/cifar10/0.50.json", "cifar10n/labels.csv"],
                          quiet=True)
    assert m["num_files"] == 50 and m["prefix_len"] > 0
    pack_cifar10.unpack(tmp_path / "p.pack", tmp_path / "dest", workers=1)
    for rel in m["paths"]:
        assert (tmp_path / "dest" / "cifar10-jpg" / rel).read_bytes() == (src / "cifar10-jpg" / rel).read_bytes()
    assert (tmp_path / "dest" / "cifar10n" / "labels.csv").read_text() == (src / "cifar10n" / "labels.csv").read_text()
