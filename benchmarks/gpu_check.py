"""The one-call GPU check behind ``benchmarks/gpu_check.sh`` (see that file for how to run it with the device tool).

    python benchmarks/gpu_check.py [--smoke] [--budget S] [--pack .gpudata/cifar10.pack] [--work DIR] OUT

Steps, each in its own process(es) with its own time budget; a failed or timed-out step is logged and the next one
runs. After every step ``OUT/gpu_check.md`` (all tables, ready to paste into ``benchmarks/RESULTS.md``) and
``OUT/gpu_check.json`` are rewritten, so whatever ran is kept even if the whole call is cut off.

0. data: unpack the CIFAR-10 JPEG pack (``benchmarks/pack_cifar10.py``) into a local folder, decode it once into
   the noisyclr cache (so no later run pays for decoding); without a pack, a clearly labelled synthetic stand-in of
   the same shapes and counts is written instead. Runs beside step 1.
1. environment: nvidia-smi, torch / CUDA / cuDNN / Triton versions, CPU, python, ``import noisyclr`` without
   installing, one bf16 matrix product as a sanity check of the card.
2. every method (standard CE, DivideMix, PLReMix, BPT-PLR, TCL (its backbone, batch 1024), SimCLR pretraining, MW-Net: from a random init on the
   GPU, from the SimCLR row's encoder in --smoke) for two epochs (one warm-up + one semi-supervised epoch for the
   dividing methods) on a stratified 5,120 / 1,024 subset with the whole fast path, concurrently on the one GPU
   (pass/fail runs: their times include compilation and contention). Two extra DivideMix runs at batch 128 and 256
   also fill the compile cache for step 3.
3. ``benchmarks/speed.py``: DivideMix, PreAct ResNet-18, all 50,000 training images, batch 64 / 128 / 256, fp32
   against the fast path, with the projected full-recipe time; three invocations in priority order.
3b. ``benchmarks/clothing1m_throughput.py`` (issue #16): Clothing1M-shaped throughput, ResNet-50 at 224², bf16, from
   6,000 synthetic 256² JPEGs streamed through the DataLoader workers (PLReMix and DivideMix presets, random init,
   no compile): warm-up / division / semi-supervised images/s and ms/step, the same with the images resident, and
   the projected wall time of both Clothing1M recipes. Its own process with its own cap; its table is section 3b.
4. fixed-budget accuracy: the DivideMix recipe on CIFAR-10 JPEG with the reference 50% sym file, fast path, stopped
   when the time left runs out; test accuracy per epoch.

``--smoke`` runs the same steps at toy size on the CPU (a tiny synthetic JPEG folder packed and unpacked through the
same code, small CNN, fp32, no compile), in well under a minute; ``tests/test_gpu_check.py`` runs it. Step 3b runs
in ``--smoke`` only with ``GPU_CHECK_C1M=1`` (the smoke run's step list that test checks does not have it yet).

Internal subcommands (used by the steps): ``worker JOBS.json``, ``data ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from noisyclr import machine as _machine  # noqa: E402  (standard library only)

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
OUT_FILES = ("gpu_check.md", "gpu_check.json", "gpu_check.log", "subprocess_logs.txt")
SUBLOG_CAP = 1_500_000  # bytes of each subprocess log kept in subprocess_logs.txt (its tail) ...
SUBLOGS_TOTAL = 14_000_000  # ... and of all of them together

# --------------------------------------------------------------------------------------------------------------
# profiles: what each step runs, and its time budget (seconds)

GPU = {
    "name": "gpu",
    "device": "cuda",
    "budget": 525,  # the whole script; gpu_check.sh adds an outer timeout 35 s later, the device call 570 s
    "fast": ["train.precision=bf16", "train.channels_last=true", "train.compile=true", "train.fused_optimizer=true"],
    "model": ["model.backbone=preact_resnet18"],
    "standin": (5000, 1000),  # images per class (train, test) of the stand-in, only if no pack came along
    "data": {"cap": 90},
    "env": {"cap": 45},
    "methods": {
        "cap": 160, "reserve": 120, "job_cap": 160, "concurrency": 9,
        # 5,120 / 1,024: whole batches at 64 ... 1024, so fewer shapes to compile
        "common": ["dataset.train_limit=5120", "dataset.test_limit=1024", "train.epochs=2"],
        "simclr": ["train.batch_size=512"],
        # random init, beside the others: waiting for the SimCLR encoder (two compiles in a row) would not fit
        "mwnet": [], "mwnet_from_simclr": False,
        # TCL on its own backbone and published global batch (5 steps of 1024 per epoch): its images/s give the
        # CIFAR-10 epoch time at batch 1024, bf16 (issue #13)
        "tcl": ["model.backbone=preact_resnet18_bn", "train.batch_size=1024"],
        "extra_dividemix_batches": [128, 256],
        # concurrent compiles: 4 kernel-compile workers each instead of one per core
        "env": {"TORCHINDUCTOR_COMPILE_THREADS": "4"},  # 8 processes x 4 on 16 cores
        "groups": None,  # None = one process per job
    },
    "speed": {
        "cap": 230, "reserve": 165, "limit": 50000, "full_size": 50000, "backbone": "preact_resnet18", "width": None,
        "methods": ["dividemix"],
        # priority order: the paper batch both ways, then the fast path at larger batches, then fp32 there; each
        # group gets its weight's share of what is left of the step when it starts
        "groups": [([64], ["fp32", "fast"], 100), ([128, 256], ["fast"], 75), ([128, 256], ["fp32"], 55)],
        "extra": [],
    },
    # step 3b (issue #16): ~70-90 s expected (ResNet-50 eager, no compile; see gpu_check.sh), cut at its cap; the
    # reserve keeps step 4's minimum (45 s + its 8 s margin), as step 3's reserve keeps 110 + 55 for 3b and 4
    "c1m": {"run": True, "cap": 120, "reserve": 55, "min": 40, "files": 6000, "steps": 30, "extra": []},
    # a checkpoint every epoch (the default): a run stopped before its first checkpoint removes its folder
    "acc": {"cap": 240, "min": 45, "preset": "dividemix-cifar10jpg-sym50", "extra": []},
    "process_env": {},
    "overlap": False,  # steps 2-4 one after the other: step 3's timings need the GPU to itself
}

SMOKE = {
    "name": "smoke",
    "device": "cpu",
    "budget": 200,  # steps 2-4 run side by side (see "overlap"); the caps only guard against a hang
    "fast": ["train.precision=fp32", "train.channels_last=true", "train.compile=false", "train.fused_optimizer=true"],
    "model": ["model.backbone=small_cnn", "model.width=8"],
    "standin": (12, 4),
    "data": {"cap": 30},
    "env": {"cap": 40},
    "methods": {
        "cap": 180, "reserve": 0, "job_cap": 180, "concurrency": 1,
        "common": ["dataset.train_limit=100", "dataset.test_limit=30", "train.epochs=2", "train.batch_size=16",
                   "train.eval_batch_size=64", "train.threads=1"],
        "simclr": ["train.batch_size=32"],
        "mwnet": ["dataset.clean_holdout=20"], "mwnet_from_simclr": True,
        "tcl": ["method.knn_k=10", "method.feat_dim=16"],
        "extra_dividemix_batches": [],
        "env": {},
        # torch imports dominate at this size: one process runs the jobs in turn
        "groups": [["standard", "dividemix", "plremix", "bpt_plr", "tcl", "simclr", "mwnet"]],
    },
    "speed": {
        "cap": 180, "reserve": 0, "limit": 100, "full_size": 50000, "backbone": "small_cnn", "width": 8,
        "methods": ["dividemix"],
        "groups": [([16, 32], ["fp32", "fast"], 60)],
        "extra": ["train.eval_batch_size=64", "train.threads=1"],
    },
    # off unless GPU_CHECK_C1M=1: tests/test_gpu_check.py checks the exact step list of a smoke run
    "c1m": {"run": False, "cap": 120, "reserve": 0, "min": 10, "files": 64, "steps": 2,
            "extra": ["model.backbone=small_cnn", "model.width=8", "dataset.options.image_size=40", "dataset.crop=32",
                      "train.precision=fp32", "train.batch_size=8", "train.threads=1"]},
    "acc": {"cap": 180, "min": 10, "preset": "dividemix-cifar10jpg-sym50",
            "extra": ["train.epochs=3", "method.warmup_epochs=1", "train.batch_size=16", "train.eval_batch_size=64",
                      "train.threads=1"]},
    # one OpenMP thread per process (two busy processes with two threads each on two cores crawl), and steps 2-4
    # side by side: at toy size the torch imports (~6 s of CPU each here, no bytecode cache) are most of the time
    "process_env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "overlap": True,
}


def method_jobs(profile: dict, data_overrides: list[str], noise_overrides: list[str], runs: Path) -> list[dict]:
    """The step-2 jobs: name, CLI argv (without --out), out folder, dependency."""
    p = profile["methods"]
    base = [f"train.device={profile['device']}", *profile["fast"], *profile["model"], *p["common"], *data_overrides,
            "log.progress=off"]
    semi = ["method.warmup_epochs=1", "method.gmm_backend=torch"]
    specs = [
        ("standard", "train", "standard-ce-cifar10jpg-sym50", noise_overrides, None),
        ("dividemix", "train", "dividemix-cifar10jpg-sym50", semi + noise_overrides, None),
        ("plremix", "train", "plremix-cifar10jpg-sym50", semi + noise_overrides, None),
        ("bpt_plr", "train", "bpt_plr-cifar10jpg-sym50", semi + noise_overrides, None),
        ("tcl", "train", "tcl-cifar10jpg-sym50", ["method.warmup_epochs=2", "train.lr_warmup_epochs=1", *p["tcl"],
                                                 *noise_overrides], None),
        ("simclr", "pretrain", "simclr-cifar10jpg-small", ["method.knn_every=1", *p["simclr"]], None),
        ("mwnet", "train", "mwnet-simclr-cifar10jpg-small-sym50",
         ["model.init=@ENCODER" if p["mwnet_from_simclr"] else "model.init=null", *p["mwnet"], *noise_overrides],
         "simclr" if p["mwnet_from_simclr"] else None),
    ]
    for bs in p["extra_dividemix_batches"]:
        specs.append((f"dividemix_bs{bs}", "train", "dividemix-cifar10jpg-sym50",
                      semi + noise_overrides + [f"train.batch_size={bs}"], None))
    jobs = []
    for name, verb, preset, extra, after in specs:
        jobs.append({"name": name, "verb": verb, "preset": preset, "argv": [verb, preset, *base, *extra],
                     "out": str(runs / name), "after": after,
                     "encoder_from": str(runs / after) if after else None})
    return jobs


# --------------------------------------------------------------------------------------------------------------
# small helpers


def now_s(t0: float) -> float:
    return time.monotonic() - t0


def md_escape(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def first_line(text: str, limit: int = 300) -> str:
    text = (text or "").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_metrics(run_dir: Path) -> list[dict]:
    rows = []
    try:
        with open(Path(run_dir) / "metrics.jsonl") as handle:
            for line in handle:
                line = line.strip()
                if line:
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return rows


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def fmt(v, spec: str = ".4f", none: str = "–") -> str:
    if v is None:
        return none
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def last_error_line(log_text: str) -> str:
    """The most telling line of a failed run's output: our one-line UserError, else the exception line."""
    lines = [ln.rstrip() for ln in log_text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("noisyclr: error:") or ln.startswith("GPU_CHECK_JOB_ERROR"):
            return ln.split(":", 1)[1].strip() if ln.startswith("GPU_CHECK_JOB_ERROR") else ln
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Failed|Exit)\b.*", ln):
            return ln
    return lines[-1] if lines else "(no output)"


# --------------------------------------------------------------------------------------------------------------
# processes with budgets


class Proc:
    """One subprocess in its own process group (so compile workers die with it), its log and its deadline."""

    def __init__(self, name: str, cmd: list[str], log_path: Path, budget: float, env: dict | None = None):
        self.name, self.cmd, self.log_path, self.budget = name, cmd, Path(log_path), budget
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.log_path, "ab")
        self.handle.write(f"$ {' '.join(cmd)}\n[budget {budget:.0f} s]\n".encode())
        self.handle.flush()
        self.start = time.monotonic()
        self.deadline = self.start + budget
        self.popen = subprocess.Popen(cmd, stdout=self.handle, stderr=subprocess.STDOUT, cwd=REPO,
                                      env=env, start_new_session=True)
        self.rc: int | None = None
        self.timed_out = False
        self.seconds = 0.0
        self._lock = threading.Lock()

    def poll(self) -> bool:
        """True once finished (on its own, or stopped at its deadline). Safe from several threads."""
        if self.rc is not None:
            return True
        if not self._lock.acquire(blocking=False):  # another thread is finishing it
            return False
        try:
            if self.rc is not None:
                return True
            rc = self.popen.poll()
            if rc is None and time.monotonic() >= self.deadline:
                self.timed_out = True
                rc = self.stop()
            if rc is None:
                return False
            self.finish(rc)
            return True
        finally:
            self._lock.release()

    def stop(self, grace: float = 10.0) -> int:
        """SIGINT to the group (the engine keeps its last epoch and exits 130), SIGKILL after ``grace``."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)
            try:
                return self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        return self.popen.wait()

    def finish(self, rc: int) -> None:
        self.rc = rc
        self.seconds = time.monotonic() - self.start
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # leftovers of the group (compile workers)
        note = f"[{'timed out after' if self.timed_out else 'exit ' + str(rc) + ' after'} {self.seconds:.1f} s]\n"
        self.handle.write(note.encode())
        self.handle.close()

    def wait(self) -> "Proc":
        while not self.poll():
            for other in LIVE:  # the others' end times and deadlines too (the env probe runs beside the data step)
                if other is not self:
                    other.poll()
            time.sleep(0.2)
        return self

    def tail(self, chars: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode(errors="replace")


LIVE: list[Proc] = []  # running processes, stopped on SIGTERM


def start(name, cmd, log_path, budget, env=None) -> Proc:
    proc = Proc(name, cmd, log_path, budget, env)
    LIVE.append(proc)
    return proc


def stop_all(grace: float = 4.0) -> None:
    """End every process still running: SIGINT to all groups at once, SIGKILL to what is left after ``grace``
    (they run in their own sessions, so nothing else would end them)."""
    live = [p for p in LIVE if p.rc is None]
    for sig in (signal.SIGINT, signal.SIGKILL):
        for proc in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, sig)
        t_end = time.monotonic() + (grace if sig == signal.SIGINT else 5.0)
        while time.monotonic() < t_end and any(p.popen.poll() is None for p in live):
            time.sleep(0.1)
    for proc in live:
        with contextlib.suppress(Exception):
            if proc.rc is None and proc.popen.poll() is not None:
                proc.timed_out = True
                proc.finish(proc.popen.returncode)


# --------------------------------------------------------------------------------------------------------------
# subcommand: worker (runs noisyclr CLI jobs in this process, one after the other)


class _Tee(io.TextIOBase):
    def __init__(self, stream):
        self.stream, self.buffer_text = stream, []

    def write(self, s):
        self.stream.write(s)
        self.buffer_text.append(s)
        if len(self.buffer_text) > 2000:
            del self.buffer_text[:1000]
        return len(s)

    def flush(self):
        self.stream.flush()

    def text(self) -> str:
        return "".join(self.buffer_text)


def worker_main(jobs_file: str) -> int:
    jobs = json.loads(Path(jobs_file).read_text())
    from noisyclr.cli import main as cli_main

    worst = 0
    for job in jobs:
        out = Path(job["out"])
        argv = list(job["argv"])
        note = ""
        if any(a == "model.init=@ENCODER" for a in argv):
            enc = Path(job["encoder_from"]) / "encoder.pt" if job.get("encoder_from") else None
            if enc is not None and enc.is_file():
                argv = [f"model.init={enc}" if a == "model.init=@ENCODER" else a for a in argv]
                note = f"init from {job['after']} encoder"
            else:
                argv = ["model.init=null" if a == "model.init=@ENCODER" else a for a in argv]
                note = f"random init ({job.get('after')} encoder missing)"
        print(f"GPU_CHECK_JOB_START {job['name']}: noisyclr {' '.join(argv)} --out {out}", flush=True)
        t0 = time.perf_counter()
        tee = _Tee(sys.stderr)
        error = None
        try:
            with contextlib.redirect_stderr(tee):
                rc = cli_main(argv + ["--out", str(out)])
            if rc:
                error = last_error_line(tee.text())
        except BaseException as exc:  # noqa: BLE001 - a job's failure must not stop the next job
            traceback.print_exc()
            rc = 130 if isinstance(exc, KeyboardInterrupt) else 1
            tb = traceback.extract_tb(exc.__traceback__)
            where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if "noisyclr" in f.filename),
                         f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?")
            error = f"{type(exc).__name__}: {first_line(str(exc), 400)} (at {where})"
            print(f"GPU_CHECK_JOB_ERROR {job['name']}: {error}", flush=True)
        seconds = time.perf_counter() - t0
        out.mkdir(parents=True, exist_ok=True)
        (out / "job_result.json").write_text(json.dumps(
            {"name": job["name"], "rc": rc, "seconds": seconds, "error": error, "note": note, "argv": argv}))
        print(f"GPU_CHECK_JOB_END {job['name']}: rc {rc} in {seconds:.1f} s", flush=True)
        worst = worst or rc
        if isinstance(rc, int) and rc == 130:
            break  # interrupted: the budget ran out
    sys.stdout.flush()
    sys.stderr.flush()
    # every file of every job is written and closed: skip the interpreter's shutdown (atexit hooks of the compile
    # worker pool can take seconds; the orchestrator ends the process group anyway)
    os._exit(0 if worst in (0, None) else 1)


# --------------------------------------------------------------------------------------------------------------
# subcommand: data (unpack the pack, or write a stand-in; then decode once into the cache)


def write_standin(src: Path, train_per_class: int, test_per_class: int, *, seed: int = 0, workers: int = 1) -> dict:
    """A synthetic, class-structured 32x32 JPEG folder in the CIFAR-10 JPEG layout, with a 50% sym noise JSON in a
    shuffled 'original' order and its ``path,index,clean`` order file. NOT CIFAR-10: for smoke runs and as a
    correctly shaped stand-in for speed measurements when the real pack is missing."""
    import numpy as np

    jobs = []
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        for k, cls in enumerate(CLASSES):
            (src / "cifar10-jpg" / split / cls).mkdir(parents=True, exist_ok=True)
            jobs.append((str(src / "cifar10-jpg" / split / cls), k, per, seed * 1000 + (split == "test") * 100 + k))
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_standin_class, jobs)
    else:
        for job in jobs:
            _standin_class(job)
    # noise + order files like the real ones: the order file lists train/<class>/<file> with an 'original' index
    rng = np.random.default_rng(seed)
    paths = [f"train/{cls}/{i:04d}.jpg" for cls in CLASSES for i in range(train_per_class)]
    clean = [k for k in range(len(CLASSES)) for _ in range(train_per_class)]
    n = len(paths)
    index = rng.permutation(n)
    noisy_orig = np.empty(n, dtype=np.int64)
    for row in range(n):
        label = clean[row]
        if rng.random() < 0.5:
            label = int(rng.integers(len(CLASSES)))
        noisy_orig[index[row]] = label
    (src / "noise-files" / "cifar10").mkdir(parents=True, exist_ok=True)
    (src / "noise-files" / "cifar10" / "0.50.json").write_text(json.dumps([int(v) for v in noisy_orig]))
    (src / "cifar10n").mkdir(parents=True, exist_ok=True)
    order = sorted(range(n), key=lambda r: index[r])
    lines = ["path,index,clean"] + [f"{paths[r]},{int(index[r])},{clean[r]}" for r in order]
    (src / "cifar10n" / "labels.csv").write_text("\n".join(lines) + "\n")
    return {"num_train": n, "num_test": test_per_class * len(CLASSES)}


def _standin_class(job) -> None:
    import numpy as np
    from PIL import Image

    folder, k, count, seed = job
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    base = np.array([(37 * k) % 255, (91 * k + 60) % 255, (151 * k + 120) % 255], np.float32)
    angle = np.pi * k / len(CLASSES)
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * (0.35 + 0.05 * k) + phase)
        img = base[None, None, :] * (0.6 + 0.3 * wave[..., None]) + rng.normal(0, 25, (32, 32, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{folder}/{i:04d}.jpg", quality=75)


def data_main(args) -> int:
    """Prepare the data folder; writes ``args.result`` (JSON). Exit 0 when a usable folder is there."""
    from pack_cifar10 import pack, unpack

    dest, work = Path(args.dest), Path(args.dest).parent
    result = {"kind": None, "root": str(dest / "cifar10-jpg"), "notes": []}
    t0 = time.perf_counter()
    if dest.exists():
        shutil.rmtree(dest)
    train_pc, test_pc = args.standin
    pack_path = Path(args.pack) if args.pack else None
    if args.smoke:
        src = work / "standin_src"
        shutil.rmtree(src, ignore_errors=True)
        write_standin(src, train_pc, test_pc)
        pack_path = work / "standin.pack"
        m = pack(src, pack_path, extra=["noise-files/cifar10/0.50.json", "cifar10n/labels.csv"], quiet=True)
        result["notes"].append(f"smoke: wrote a {m['num_files']}-file synthetic JPEG folder, packed it "
                               f"({m['packed_bytes']:,} bytes) and unpacked it through pack_cifar10.py")
        result["kind"] = "smoke stand-in"
    if pack_path is not None and pack_path.is_file():
        try:
            info = unpack(pack_path, dest, workers=args.workers)
            result.update(pack=str(pack_path), pack_bytes=pack_path.stat().st_size, unpack_s=info["unpack_seconds"],
                          num_train=info["num_train"], num_test=info["num_test"], subset=info["subset"],
                          sha256_ok=True, pack_commit=info.get("commit"), pack_created=info.get("created"),
                          missing_extra_files=info.get("missing_extra_files"))
            result["kind"] = result["kind"] or ("CIFAR-10 JPEG (subset)" if any(info["subset"].values())
                                                else "CIFAR-10 JPEG")
            print(f"unpacked {info['written']:,} files from {pack_path} in {info['unpack_seconds']:.1f} s "
                  f"({info['workers']} processes), SHA-256 ok", flush=True)
        except BaseException as exc:  # noqa: BLE001 - fall back to the stand-in below
            traceback.print_exc()
            result["notes"].append(f"unpacking {pack_path} failed: {type(exc).__name__}: {first_line(str(exc))}")
            shutil.rmtree(dest, ignore_errors=True)
    elif not args.smoke:
        result["notes"].append(f"no pack at {pack_path} (was .gpudata named in carry?)")
    if result["kind"] is None:
        t1 = time.perf_counter()
        info = write_standin(dest, train_pc, test_pc, workers=args.workers)
        result.update(kind="STAND-IN", standin_s=time.perf_counter() - t1, **info)
        result["notes"].append(f"STAND-IN: synthetic class-structured 32x32 JPEGs ({train_pc}/{test_pc} per class), "
                               "NOT CIFAR-10: accuracies are meaningless, speeds are valid")
        print(result["notes"][-1], flush=True)
    # decode once into the cache every later run reads
    from noisyclr.data.folder import load_folder

    t1 = time.perf_counter()
    splits = load_folder(dest / "cifar10-jpg", cache_dir=args.cache)
    result.update(decode_s=time.perf_counter() - t1, decoded_train=len(splits.train), decoded_test=len(splits.test),
                  image_shape=list(splits.train.images.shape[1:]), seconds=time.perf_counter() - t0)
    print(f"decoded {len(splits.train):,} + {len(splits.test):,} images into the cache {args.cache} in "
          f"{result['decode_s']:.1f} s", flush=True)
    Path(args.result).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------------------------
# the orchestrator

ENV_PROBE = r"""
import json, sys, time
r = {"python": sys.version.split()[0], "executable": sys.executable}
import noisyclr
r["noisyclr"] = f"{noisyclr.__version__} ({noisyclr.__file__})"
import torch
r["torch"] = torch.__version__
r["cuda"] = torch.version.cuda
r["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
r["threads"] = torch.get_num_threads()
r["cuda_available"] = torch.cuda.is_available()
for mod in ("numpy", "sklearn", "yaml", "PIL", "tqdm", "triton"):
    try:
        r[mod] = __import__(mod).__version__
    except Exception as exc:
        r[mod] = f"missing ({type(exc).__name__})"
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    r.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_mem_gib=round(p.total_memory / 2**30, 1),
             sms=p.multi_processor_count, bf16=torch.cuda.is_bf16_supported())
    try:
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(10):
            a @ b
        e.record()
        torch.cuda.synchronize()
        r["bf16_matmul_tflops"] = round(2 * n**3 * 10 / (s.elapsed_time(e) / 1e3) / 1e12, 1)
    except Exception as exc:
        r["bf16_matmul_tflops"] = f"failed: {type(exc).__name__}: {exc}"
print("GPU_CHECK_ENV " + json.dumps(r), flush=True)
"""


class Check:
    def __init__(self, args):
        self.args = args
        self.profile = SMOKE if args.smoke else GPU
        self.t0 = time.monotonic()
        self.budget = float(args.budget or self.profile["budget"])
        self.deadline = self.t0 + self.budget
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.own_work = args.work is None
        self.work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.log_handle = open(self.out / "gpu_check.log", "a")
        self.lock = threading.RLock()
        self.python = os.environ.get("PYTHON") or sys.executable
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = str(REPO) + (os.pathsep + self.env["PYTHONPATH"] if self.env.get("PYTHONPATH") else "")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env["NOISYCLR_CACHE"] = str(self.work / "cache")
        self.env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.work / "inductor"))  # shared by every step
        self.env.update(self.profile["process_env"])
        if shutil.which("git", path=self.env.get("PATH")) is None:  # speed.py asks git for the commit
            shim = self.work / "bin"
            shim.mkdir(exist_ok=True)
            (shim / "git").write_text("#!/bin/sh\nexit 0\n")
            (shim / "git").chmod(0o755)
            self.env["PATH"] = f"{shim}{os.pathsep}{self.env.get('PATH', '')}"
        self.state = {
            "mode": self.profile["name"],
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "budget_s": self.budget,
            "commit": self.commit(),
            "steps": {},
            "data": {},
            "env": {},
            "methods": [],
            "speed": {"groups": [], "rows": [], "stamps": [], "header": None},
            "c1m": {},
            "acc": {},
        }

    # ---------------------------------------------------------------------------------------------- plumbing
    def log(self, msg: str) -> None:
        line = f"[{now_s(self.t0):6.1f}s] {msg}"
        with self.lock:
            print(line, flush=True)
            self.log_handle.write(line + "\n")
            self.log_handle.flush()

    def commit(self) -> str:
        if os.environ.get("GPU_CHECK_COMMIT"):  # given by the caller where the copy has no .git (the device)
            return os.environ["GPU_CHECK_COMMIT"]
        try:
            out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                 timeout=10)
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip() + (" (+local changes)" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
        return "unknown (no git checkout here)"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step_budget(self, cap: float, reserve: float = 0.0) -> float:
        return max(0.0, min(cap, self.left() - reserve))

    def record_step(self, key: str, status: str, budget: float, t_start: float, note: str = "",
                    seconds: float | None = None) -> None:
        used = time.monotonic() - t_start if seconds is None else seconds
        self.state["steps"][key] = {"status": status, "budget_s": round(budget, 1), "used_s": round(used, 1),
                                    "note": note}
        self.log(f"step {key}: {status} in {used:.1f} s (budget {budget:.0f} s) {note}")
        self.write()

    def write(self) -> None:
        with self.lock:
            self._write()

    def _write(self) -> None:
        try:
            atomic_write(self.out / "gpu_check.json", json.dumps(self.state, indent=1, default=str))
            atomic_write(self.out / "gpu_check.md", self.markdown())
            self.collect_logs()
        except Exception:  # noqa: BLE001 - reporting must never stop the check
            self.log("writing the report failed:\n" + traceback.format_exc())

    def collect_logs(self) -> None:
        parts = []
        paths = sorted(self.logs.glob("*.log"), key=lambda p: p.stat().st_mtime)
        cap = min(SUBLOG_CAP, SUBLOGS_TOTAL // max(len(paths), 1))  # a file that comes back is at most 16 MiB
        for path in paths:
            data = path.read_bytes()
            cut = len(data) > cap
            parts.append(f"\n{'=' * 100}\n== {path.name}{' (last %d bytes)' % cap if cut else ''}\n{'=' * 100}\n")
            parts.append(data[-cap:].decode(errors="replace"))
        atomic_write(self.out / "subprocess_logs.txt", "".join(parts))

    # ---------------------------------------------------------------------------------------------- steps
    def data_overrides(self) -> tuple[list[str], list[str]]:
        d = self.work / "data"
        return ([f"dataset.root={d / 'cifar10-jpg'}"],
                [f"noise.file={d / 'noise-files' / 'cifar10' / '0.50.json'}",
                 f"noise.order_file={d / 'cifar10n' / 'labels.csv'}"])

    def start_env(self) -> tuple[Proc, float, float]:
        """Step 1 in the background: the torch/CUDA probe process; the quick checks run in this process."""
        budget = self.step_budget(self.profile["env"]["cap"])
        t_start = time.monotonic()
        proc = start("env", [self.python, "-c", ENV_PROBE], self.logs / "01_env.log", budget, self.env)
        env = self.state["env"]
        env["nvidia_smi"] = self.nvidia_smi()
        env["cpu"] = cpu_model()
        env["cores"] = os.cpu_count()
        env["mem_gib"] = mem_gib()
        try:
            imp = subprocess.run([self.python, "-c", "import noisyclr; print(noisyclr.__version__, noisyclr.__file__)"],
                                 cwd=REPO, env=self.env, capture_output=True, text=True, timeout=60)
            env["import_noisyclr"] = (f"ok: {imp.stdout.strip()}" if imp.returncode == 0
                                      else f"FAILED: {last_error_line(imp.stderr)}")
        except (OSError, subprocess.SubprocessError) as exc:
            env["import_noisyclr"] = f"FAILED: {exc}"
        return proc, budget, t_start

    def collect_env(self, handle: tuple[Proc, float, float]) -> None:
        proc, budget, t_start = handle
        proc.wait()
        env = self.state["env"]
        match = re.search(r"^GPU_CHECK_ENV (.*)$", proc.tail(20000), re.M)
        if match:
            env.update(json.loads(match.group(1)))
            status = "ok"
        else:
            status = "timeout" if proc.timed_out else "FAIL"
            env["probe_error"] = last_error_line(proc.tail())
        if env.get("import_noisyclr", "").startswith("FAILED"):
            status = "FAIL"
        if not self.args.smoke and not env.get("cuda_available"):
            status = "FAIL"
            env["probe_error"] = env.get("probe_error") or "torch sees no CUDA device"
        self.record_step("env", status, budget, t_start, env.get("probe_error", ""), seconds=proc.seconds)

    def step_data(self) -> bool:
        """Step 0: unpack (or write the stand-in) and decode into the cache. Returns whether the folder is usable."""
        p = self.profile
        t_start = time.monotonic()
        budget = self.step_budget(p["data"]["cap"])
        result_path = self.work / "data_result.json"
        cmd = [self.python, str(HERE / "gpu_check.py"), "data", "--dest", str(self.work / "data"),
               "--cache", str(self.work / "cache"), "--result", str(result_path),
               "--standin", str(p["standin"][0]), str(p["standin"][1]),
               "--workers", str(min(16, os.cpu_count() or 1))]
        if self.args.pack:
            cmd += ["--pack", self.args.pack]
        if self.args.smoke:
            cmd.append("--smoke")
        self.log(f"step 0 data: {' '.join(cmd[2:])}")
        proc = start("data", cmd, self.logs / "00_data.log", budget, self.env).wait()
        data = read_json(result_path) or {}
        data["seconds_total"] = round(proc.seconds, 1)
        if proc.rc != 0 or not data:
            data["error"] = "timed out" if proc.timed_out else last_error_line(proc.tail())
        self.state["data"] = data
        ok = proc.rc == 0 and bool(data.get("decoded_train"))
        self.record_step("data", "ok" if ok else ("timeout" if proc.timed_out else "FAIL"), budget, t_start,
                         data.get("error", "") or data.get("kind", ""))
        return ok

    def nvidia_smi(self) -> str:
        exe = shutil.which("nvidia-smi", path=self.env.get("PATH"))
        if not exe:
            return "not found"
        parts = []
        # basic fields first, the rest separately: one unknown field makes nvidia-smi refuse the whole query
        for fields in ("name,driver_version,memory.total",
                       "clocks.sm,clocks.max.sm,power.limit,temperature.gpu,utilization.gpu,mig.mode.current"):
            try:
                q = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                                   text=True, timeout=20)
                parts.append(q.stdout.strip() or f"({first_line(q.stderr)})")
            except (OSError, subprocess.SubprocessError) as exc:
                parts.append(f"(failed: {exc})")
        try:
            full = subprocess.run([exe], capture_output=True, text=True, timeout=20)
            (self.logs / "01_nvidia_smi.log").write_text(full.stdout + full.stderr)
        except (OSError, subprocess.SubprocessError):
            pass
        return "; ".join(parts)

    def step_methods(self) -> None:
        p = self.profile["methods"]
        t_start = time.monotonic()
        budget = self.step_budget(p["cap"], p["reserve"])
        step_deadline = time.monotonic() + budget
        data_o, noise_o = self.data_overrides()
        runs = self.work / "runs"
        jobs = method_jobs(self.profile, data_o, noise_o, runs)
        self.state["methods_overrides"] = [f"train.device={self.profile['device']}", *self.profile["fast"],
                                           *self.profile["model"], *p["common"]]
        by_name = {j["name"]: j for j in jobs}
        groups = p["groups"] or [[j["name"]] for j in jobs]
        groups = [[by_name[n] for n in g if n in by_name] for g in groups]
        env = {**self.env, **p["env"]}
        pending = list(groups)
        running: list[tuple[list[dict], Proc]] = []
        procs: dict[str, Proc] = {}  # job name -> the process running it
        finished_jobs: set[str] = set()
        self.log(f"step 2 methods: {len(jobs)} runs in {len(groups)} processes, {p['concurrency']} at a time, "
                 f"budget {budget:.0f} s")
        while pending or running:
            for group in list(pending):
                if len(running) >= p["concurrency"]:
                    break
                names = {j["name"] for j in group}
                deps = {j["after"] for j in group if j.get("after") and j["after"] not in names}
                if not deps <= finished_jobs:
                    continue
                left = step_deadline - time.monotonic()
                if left < 5:
                    break
                pending.remove(group)
                jobs_file = self.work / f"jobs_{group[0]['name']}.json"
                jobs_file.write_text(json.dumps(group))
                for j in group:
                    shutil.rmtree(j["out"], ignore_errors=True)
                proc = start(group[0]["name"], [self.python, str(HERE / "gpu_check.py"), "worker", str(jobs_file)],
                             self.logs / f"02_{group[0]['name']}.log", min(p["job_cap"] * len(group), left), env)
                running.append((group, proc))
                procs.update({j["name"]: proc for j in group})
                self.log(f"  started {'+'.join(names)} (budget {proc.budget:.0f} s)")
            for group, proc in list(running):
                if proc.poll():
                    running.remove((group, proc))
                    finished_jobs |= {j["name"] for j in group}
                    self.log(f"  finished {'+'.join(j['name'] for j in group)}: "
                             f"{'timeout' if proc.timed_out else 'exit ' + str(proc.rc)} after {proc.seconds:.0f} s")
                    self.state["methods"] = self.method_rows(jobs, procs)
                    self.write()
            if pending and not running and step_deadline - time.monotonic() < 5:
                break
            time.sleep(0.3)
        self.state["methods"] = self.method_rows(jobs, procs)
        statuses = [r["status"] for r in self.state["methods"]]
        ok = sum(s == "ok" for s in statuses)
        self.record_step("methods", "ok" if ok == len(statuses) else f"{ok}/{len(statuses)} ok", budget, t_start)

    def method_rows(self, jobs: list[dict], procs: dict) -> list[dict]:
        rows = []
        for job in jobs:
            out = Path(job["out"])
            res = read_json(out / "job_result.json")
            summary = read_json(out / "summary.json")
            metrics = read_metrics(out)
            proc = procs.get(job["name"])
            row = {"name": job["name"], "preset": job["preset"], "verb": job["verb"],
                   "epochs": len(metrics), "test_acc": [m.get("test_acc") for m in metrics],
                   "epoch_s": [round(m.get("epoch_time_s", 0.0), 1) for m in metrics]}
            if res is not None:
                row.update(rc=res["rc"], process_s=round(res["seconds"], 1), error=res.get("error"),
                           note=res.get("note", ""))
                row["status"] = "ok" if res["rc"] == 0 and summary else ("timeout" if res["rc"] == 130 else "FAIL")
                if res["rc"] == 0 and not summary:
                    row["error"] = row.get("error") or "no summary.json written"
            elif proc is None:
                row.update(status="not run", error="no time left in the step")
            elif proc.rc is None:
                row.update(status="running")
            elif not out.exists():  # its process ended before it reached this job
                row.update(status="timeout" if proc.timed_out else "FAIL",
                           error=(f"not reached: its process stopped at the step budget ({proc.budget:.0f} s)"
                                  if proc.timed_out else f"not reached: {last_error_line(proc.tail())}"))
            else:
                row.update(status="timeout" if proc.timed_out else "FAIL",
                           error=(f"stopped at the step budget ({proc.budget:.0f} s) after {len(metrics)} epochs"
                                  if proc.timed_out else last_error_line(proc.tail())))
            if summary:
                row.update(wall_s=summary.get("wall_time_s"), img_s=summary.get("images_per_s"),
                           test_acc_last=summary.get("test_acc_last"), device=summary.get("device"),
                           label_precision=summary.get("label_precision"), label_recall=summary.get("label_recall"))
            rows.append(row)
        return rows

    def step_speed(self) -> None:
        p = self.profile["speed"]
        t_start = time.monotonic()
        budget = self.step_budget(p["cap"], p["reserve"])
        step_deadline = time.monotonic() + budget
        data_o, noise_o = self.data_overrides()
        sp = self.state["speed"]
        sp.update(limit=p["limit"], full_size=p["full_size"], backbone=p["backbone"], methods=p["methods"])
        groups = p["groups"]
        for i, (batches, variants, weight) in enumerate(groups, 1):
            left = step_deadline - time.monotonic()
            share = left * weight / sum(g[2] for g in groups[i - 1:])
            entry = {"batches": batches, "variants": variants, "budget": round(share, 1)}
            if share < 10:
                entry.update(status="skipped", note="no time left in the step")
                sp["groups"].append(entry)
                continue
            cmd = [self.python, str(HERE / "speed.py"), "--methods", *p["methods"],
                   "--batch-sizes", *map(str, batches), "--variants", *variants, "--backbone", p["backbone"],
                   "--limit", str(p["limit"]), "--full-size", str(p["full_size"]),
                   "--device", self.profile["device"], *(["--width", str(p["width"])] if p["width"] else []),
                   *data_o, *noise_o, *p["extra"]]
            entry["command"] = "python benchmarks/speed.py " + " ".join(cmd[2:])
            self.log(f"step 3 speed group {i}: batch {batches} {variants} (budget {share:.0f} s)")
            proc = start(f"speed{i}", cmd, self.logs / f"03_speed_{i}.log", share, self.env).wait()
            text = proc.tail(200000)
            rows = [ln for ln in text.splitlines() if any(ln.startswith(f"| {m} |") for m in p["methods"])]
            for ln in rows:
                if ln not in sp["rows"]:
                    sp["rows"].append(ln)
            for ln in text.splitlines():
                if ln.startswith("| method | backbone |"):
                    sp["header"] = ln
                if re.match(r"^\d{4}-\d{2}-\d{2} · ", ln) and ln not in sp["stamps"]:
                    sp["stamps"].append(ln)
            want = len(batches) * len(variants) * len(p["methods"])
            got = len(set(rows))
            entry.update(seconds=round(proc.seconds, 1), rows=got, expected=want, rc=proc.rc)
            entry["status"] = "ok" if proc.rc == 0 and got == want else ("timeout" if proc.timed_out else "FAIL")
            if entry["status"] != "ok":
                entry["error"] = (f"stopped at its budget after {got} of {want} rows" if proc.timed_out
                                  else last_error_line(text))
            sp["groups"].append(entry)
            self.write()
        statuses = [g["status"] for g in sp["groups"]]
        self.record_step("speed", "ok" if all(s == "ok" for s in statuses) else
                         f"{sum(s == 'ok' for s in statuses)}/{len(statuses)} groups ok", budget, t_start,
                         f"{len(sp['rows'])} rows")

    def c1m_enabled(self) -> bool:
        return bool(self.profile["c1m"]["run"] or os.environ.get("GPU_CHECK_C1M") == "1")

    def step_c1m(self) -> None:
        """Step 3b: benchmarks/clothing1m_throughput.py in its own process, capped; its JSON and Markdown are
        rewritten after every phase, so a cut run keeps its rows."""
        p = self.profile["c1m"]
        t_start = time.monotonic()
        budget = self.step_budget(p["cap"], p["reserve"])
        c1m = self.state["c1m"]
        json_path, md_path = self.work / "c1m.json", self.work / "c1m.md"
        cmd = [self.python, str(HERE / "clothing1m_throughput.py"), "--device", self.profile["device"],
               "--files", str(p["files"]), "--steps", str(p["steps"]), "--root", str(self.work / "c1m_data"),
               "--budget", f"{max(budget - 12, 0):.0f}", "--json", str(json_path), "--md", str(md_path), *p["extra"]]
        c1m.update(command="python benchmarks/clothing1m_throughput.py " + " ".join(
            a.replace(str(self.work), "<work>") for a in cmd[2:]), budget_s=round(budget, 1))
        if budget < p["min"]:
            c1m.update(status="skipped", error=f"only {budget:.0f} s left (needs {p['min']} s)")
            self.record_step("c1m", "skipped", budget, t_start, c1m["error"])
            return
        self.log(f"step 3b clothing1m throughput: {' '.join(cmd[2:])} (budget {budget:.0f} s)")
        proc = start("c1m", cmd, self.logs / "03b_c1m.log", budget, self.env).wait()
        shutil.rmtree(self.work / "c1m_data", ignore_errors=True)
        result = read_json(json_path) or {}
        c1m.update(seconds=round(proc.seconds, 1), rc=proc.rc, timed_out=proc.timed_out,
                   result=result, markdown=md_path.read_text() if md_path.is_file() else "")
        done = [f"{name} {key}" for name, r in (result.get("methods") or {}).items() for key in r.get("phases", {})]
        projected = [n for n, pr in (result.get("projections") or {}).items() if (pr or {}).get("streamed")]
        if proc.rc == 0 and result.get("done") and projected:
            status = "ok"
        elif done:
            status = "partial"
        else:
            status = "timeout" if proc.timed_out else "FAIL"
        if status != "ok":
            c1m["error"] = ("; ".join(result.get("errors") or []) or
                            ("stopped at the step budget" if proc.timed_out else last_error_line(proc.tail())))
        c1m["status"] = status
        self.record_step("c1m", status, budget, t_start,
                         f"{len(done)} phases, projected: {', '.join(projected) or 'none'}")

    def step_acc(self) -> None:
        p = self.profile["acc"]
        t_start = time.monotonic()
        budget = self.step_budget(p["cap"], 8.0)
        acc = self.state["acc"]
        data_o, noise_o = self.data_overrides()
        fast = [f"train.device={self.profile['device']}", *self.profile["fast"], "method.gmm_backend=torch"]
        model = [] if not self.args.smoke else self.profile["model"]
        argv = ["train", p["preset"], *fast, *model, *data_o, *noise_o, "log.progress=off", *p["extra"]]
        out = self.work / "runs" / "acc"
        acc.update(preset=p["preset"], overrides=[a for a in argv[2:] if not a.startswith(("dataset.root", "noise."))],
                   budget_s=round(budget, 1))
        if budget < p["min"]:
            acc.update(status="skipped", error=f"only {budget:.0f} s left (needs {p['min']} s)")
            self.record_step("acc", "skipped", budget, t_start, acc["error"])
            return
        shutil.rmtree(out, ignore_errors=True)
        jobs_file = self.work / "jobs_acc.json"
        jobs_file.write_text(json.dumps([{"name": "acc", "argv": argv, "out": str(out)}]))
        self.log(f"step 4 accuracy: {p['preset']} for {budget:.0f} s")
        proc = start("acc", [self.python, str(HERE / "gpu_check.py"), "worker", str(jobs_file)],
                     self.logs / "04_acc.log", budget, self.env).wait()
        metrics = read_metrics(out)
        res = read_json(out / "job_result.json") or {}
        cfg_epochs = None
        with contextlib.suppress(Exception):
            cfg_text = (out / "config.yaml").read_text()
            cfg_epochs = int(re.search(r"^train:\n(?:  .*\n)*?  epochs: (\d+)", cfg_text, re.M).group(1))
        acc.update(seconds=round(proc.seconds, 1), epochs_done=len(metrics), recipe_epochs=cfg_epochs,
                   rc=proc.rc, timed_out=proc.timed_out, stopped_by_budget=proc.timed_out or res.get("rc") == 130,
                   rows=[{k: m.get(k) for k in ("epoch", "test_acc", "test_acc_net1", "test_acc_net2", "labeled_size",
                                                 "label_precision", "label_recall", "clean_auc", "lr", "epoch_time_s",
                                                 "train_time_s")} for m in metrics])
        if metrics:
            status = "ok"
        else:
            status = "timeout" if proc.timed_out else "FAIL"
            acc["error"] = res.get("error") or ("no epoch finished within the budget" if proc.timed_out
                                                else last_error_line(proc.tail()))
        acc["status"] = status
        self.record_step("acc", status, budget, t_start, f"{len(metrics)} epochs")

    # ---------------------------------------------------------------------------------------------- report
    def markdown(self) -> str:
        s, env, data = self.state, self.state["env"], self.state["data"]
        smoke = self.args.smoke
        gpu = env.get("gpu") or ("CPU" if smoke else "no GPU seen")
        lines = [f"## {s['started'][:10]} — GPU check (`benchmarks/gpu_check.sh`): {gpu}, torch {env.get('torch', '?')}"
                 f"{' — SMOKE' if smoke else ''}", ""]
        if smoke:
            lines += ["**SMOKE RUN** (`--smoke`: CPU, toy sizes, small CNN, fp32, no compile): it checks that the "
                      "script runs end to end; no number below is a measurement.", ""]
        kind = data.get("kind") or "?"
        if data.get("pack"):
            src = (f"{kind}, unpacked from `{Path(data['pack']).name}` ({data.get('pack_bytes', 0) / 2**20:.1f} MiB, "
                   f"SHA-256 verified, packed at commit {data.get('pack_commit', '?')}) in {fmt(data.get('unpack_s'), '.1f')} s")
        else:
            src = kind
        lines += [f"Command: `bash benchmarks/gpu_check.sh{' --smoke' if smoke else ''}` · commit {s['commit']} · "
                  f"budget {s['budget_s']:.0f} s · started {s['started']}",
                  f"Data: {src}; {data.get('decoded_train', '?')} train + {data.get('decoded_test', '?')} test images "
                  f"{tuple(data.get('image_shape', []))}, decoded into the cache in {fmt(data.get('decode_s'), '.1f')} s.",
                  ""]
        for note in data.get("notes", []):
            lines.append(f"- {note}")
        if data.get("error"):
            lines.append(f"- data step error: {data['error']}")
        if data.get("notes") or data.get("error"):
            lines.append("")

        # 1. environment
        lines += ["### 1. Environment", "", "| item | value |", "|---|---|"]
        gpu_line = env.get("gpu")
        if gpu_line:
            gpu_line = (f"{env['gpu']} (compute {env.get('capability')}, {env.get('sms')} SMs, "
                        f"{env.get('gpu_mem_gib')} GiB, bf16 {env.get('bf16')})")
        items = [
            ("GPU (torch)", gpu_line or "none visible"),
            ("nvidia-smi (name, driver, memory, SM clock now / max, power limit, temp, util, MIG)",
             env.get("nvidia_smi")),
            ("bf16 matmul 8192³ (10 after 3 warm-ups, random data)",
             f"{env['bf16_matmul_tflops']} TFLOP/s" if "bf16_matmul_tflops" in env else None),
            ("torch", env.get("torch")), ("CUDA (torch build)", env.get("cuda")), ("cuDNN", env.get("cudnn")),
            ("Triton", env.get("triton")),
            ("CPU", f"{env.get('cpu')}, {env.get('cores')} cores, {fmt(env.get('mem_gib'), '.0f')} GiB RAM"),
            ("python", f"{env.get('python')} ({env.get('executable')})"),
            ("`python -c 'import noisyclr'` (PYTHONPATH=., not installed)", env.get("import_noisyclr")),
            ("numpy / scikit-learn / PyYAML / Pillow / tqdm",
             " / ".join(str(env.get(k, "?")) for k in ("numpy", "sklearn", "yaml", "PIL", "tqdm"))),
        ]
        if env.get("probe_error"):
            items.append(("probe error", env["probe_error"]))
        lines += [f"| {k} | {md_escape(v if v is not None else '–')} |" for k, v in items] + [""]

        # 2. methods
        mo = s.get("methods_overrides", [])
        lines += ["### 2. Every method, 2 epochs (epoch 2 semi-supervised for the dividing methods)", "",
                  f"`noisyclr train|pretrain <preset> {' '.join(mo)} [method.warmup_epochs=1 method.gmm_backend=torch] "
                  "dataset.root=<unpacked> noise.file=<0.50.json> noise.order_file=<labels.csv> --out DIR`; MW-Net "
                  + ("starts from the SimCLR row's encoder" if self.profile["methods"]["mwnet_from_simclr"] else
                     "starts from a random init (`model.init=null`), beside the others")
                  + "; the `dividemix_bs*` rows only change `train.batch_size` (they also fill the compile cache for "
                  "step 3)."
                  + ("" if smoke else " **All runs shared the GPU and 16 cores at once: process time, epoch time "
                     "and img/s include compilation and contention; they show whether each runs, not its speed "
                     "(step 3 has the speeds).**"), "",
                  "| method | preset | status | process s | epoch s (1, 2) | img/s | test acc (per epoch) | label prec / rec | error / note |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in s["methods"]:
            accs = " → ".join(fmt(a) for a in r.get("test_acc", [])) or "–"
            pr = (f"{fmt(r.get('label_precision'), '.3f')} / {fmt(r.get('label_recall'), '.3f')}"
                  if r.get("label_precision") is not None else "–")
            err = r.get("error") or r.get("note") or ""
            lines.append(f"| {r['name']} | {r['preset']} | {r['status']} | {fmt(r.get('process_s'), '.0f')} "
                         f"| {', '.join(fmt(e, '.1f') for e in r.get('epoch_s', [])) or '–'} "
                         f"| {fmt(r.get('img_s'), '.0f')} | {accs} | {pr} | {md_escape(err)} |")
        lines.append("")

        # 3. speed
        sp = s["speed"]
        lines += [f"### 3. Speed: `benchmarks/speed.py`, {', '.join(sp.get('methods', []))}, {sp.get('backbone')}, "
                  f"{sp.get('limit', 0):,} training rows timed, projected to {sp.get('full_size', 0):,}", ""]
        if data.get("kind") == "STAND-IN":
            lines += ["**Data: STAND-IN** (synthetic JPEGs of CIFAR-10's shapes and counts; speed does not depend on "
                      "the pixels, but the labeled fraction, hence the semi-supervised step count, does).", ""]
        for g in sp["groups"]:
            if g.get("command"):
                lines.append(f"- `{g['command'].split(' dataset.root=')[0]} dataset.root=… noise.file=… "
                             f"noise.order_file=…`: {g['status']}, {g.get('rows', 0)}/{g.get('expected', '?')} rows in "
                             f"{fmt(g.get('seconds'), '.0f')} s{(' — ' + md_escape(g['error'])) if g.get('error') else ''}")
            else:
                lines.append(f"- batch {g['batches']} {g['variants']}: {g['status']} ({g.get('note', '')})")
        lines.append("")
        for stamp in sp["stamps"]:
            lines.append(stamp)
        if sp["rows"]:
            header = sp["header"] or ("| method | backbone | batch | variant | warm-up img/s | warm-up ms/step | eval s "
                                      "| div − eval s | semi img/s | semi ms/step | semi s/epoch | labeled | peak GiB "
                                      "| projected full run |")
            lines += ["", header, "|" + "---|" * (header.count("|") - 1), *sp["rows"]]
        else:
            lines.append("(no rows)")
        lines += ["", "Variants: `fp32` = fp32, NCHW, no compile, foreach SGD, sklearn GMM; `fast` = bf16 autocast + "
                  "torch.compile (CUDA), channels_last, fused SGD, GMM on the device. Projected full run = the "
                  "preset's whole recipe (DivideMix: 300 epochs, 10 warm-up) from these timings (speed.py docstring).",
                  ""]

        # 3b. Clothing1M-shaped throughput
        c1m = s.get("c1m") or {}
        if c1m:
            lines += ["### 3b. Clothing1M-shaped throughput: `benchmarks/clothing1m_throughput.py` (issue #16)", "",
                      f"`{c1m.get('command', '?')}`: {c1m.get('status', 'running')}, {fmt(c1m.get('seconds'), '.0f')} s "
                      f"of a {fmt(c1m.get('budget_s'), '.0f')} s budget"
                      + (f" — {md_escape(c1m['error'])}" if c1m.get("error") else "") + ". "
                      + ("SMOKE: small CNN, fp32, toy sizes (the overrides above)." if smoke else
                         "ResNet-50 (random init, `model.pretrained=null`), 224² crops of synthetic 256² JPEGs "
                         "streamed by DataLoader workers, bf16, no compile; the presets' batch sizes."), ""]
            if c1m.get("markdown"):
                lines += [c1m["markdown"].rstrip(), ""]

        # 4. accuracy
        acc = s["acc"]
        if acc:
            lines += [f"### 4. Fixed-budget accuracy: `{acc.get('preset')}` (CIFAR-10 JPEG, reference 50% sym file)",
                      "", f"Overrides: `{' '.join(acc.get('overrides', []))}`; budget "
                      f"{fmt(acc.get('budget_s'), '.0f')} s: "
                      + (f"stopped there (SIGINT) after the first {acc.get('epochs_done', 0)} epochs of the "
                         f"{acc.get('recipe_epochs') or '?'}-epoch recipe (its own schedule, not a shortened one)"
                         if acc.get("stopped_by_budget") and acc.get("epochs_done") != acc.get("recipe_epochs") else
                         f"{acc.get('epochs_done', 0)} of {acc.get('recipe_epochs') or '?'} epochs")
                      + f", {fmt(acc.get('seconds'), '.0f')} s in all (start, data, compile included). "
                      f"Status: {acc.get('status', '?')}"
                      f"{(' — ' + md_escape(acc['error'])) if acc.get('error') else ''}.", ""]
            if acc.get("rows"):
                lines += ["| epoch | test acc | net 1 | net 2 | labeled | label prec | label rec | clean AUC | lr | epoch s |",
                          "|---|---|---|---|---|---|---|---|---|---|"]
                for r in acc["rows"]:
                    lines.append(f"| {r['epoch']} | {fmt(r['test_acc'])} | {fmt(r['test_acc_net1'])} "
                                 f"| {fmt(r['test_acc_net2'])} | {fmt(r['labeled_size'], 'd')} "
                                 f"| {fmt(r['label_precision'], '.3f')} | {fmt(r['label_recall'], '.3f')} "
                                 f"| {fmt(r['clean_auc'], '.3f')} | {fmt(r['lr'], '.4g')} | {fmt(r['epoch_time_s'], '.1f')} |")
                lines.append("")

        # budgets
        lines += ["### Step budgets", "", "| step | status | budget s | used s | note |", "|---|---|---|---|---|"]
        order = ["data", "env", "methods", "speed", "c1m", "acc"]
        for key, st in sorted(s["steps"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
            lines.append(f"| {key} | {st['status']} | {st['budget_s']:.0f} | {st['used_s']:.1f} | {md_escape(st['note'])} |")
        lines.append(f"\nTotal: {now_s(self.t0):.0f} s of the {self.budget:.0f} s budget. Logs: `gpu_check.log`, "
                     "`subprocess_logs.txt`; everything above as JSON: `gpu_check.json`.")
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------------------------------------- run
    def run(self) -> int:
        self.log(f"gpu_check ({self.profile['name']}): out {self.out}, work {self.work}, python {self.python}, "
                 f"budget {self.budget:.0f} s")
        env_handle = self.guarded("env", self.start_env)
        data_ok = self.guarded("data", self.step_data)
        if env_handle and not self.profile["overlap"]:
            self.guarded("env", self.collect_env, env_handle)
        steps = [("methods", self.step_methods), ("speed", self.step_speed),
                 *([("c1m", self.step_c1m)] if self.c1m_enabled() else []), ("acc", self.step_acc)]
        if not data_ok:
            for name, _ in steps:
                self.state["steps"][name] = {"status": "skipped", "budget_s": 0, "used_s": 0,
                                             "note": "no data folder (step data failed)"}
        elif self.profile["overlap"]:  # smoke: side by side (see SMOKE["overlap"])
            threads = [threading.Thread(target=self.guarded, args=(name, fn), daemon=True) for name, fn in steps]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
                    if env_handle:
                        env_handle[0].poll()  # notes when the probe ended
        else:
            for name, fn in steps:
                self.guarded(name, fn)
        if env_handle and self.profile["overlap"]:
            self.guarded("env", self.collect_env, env_handle)
        self.log(f"done in {now_s(self.t0):.0f} s")
        self.write()
        print("\n" + (self.out / "gpu_check.md").read_text(), flush=True)
        return 0

    def guarded(self, name: str, fn, *args):
        """``fn(*args)``; a crash is logged and recorded as the step's status (one broken step never costs the others)."""
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001
            self.log(f"step {name} crashed:\n{traceback.format_exc()}")
            self.state["steps"][name] = {"status": "CRASH", "budget_s": 0, "used_s": 0,
                                         "note": first_line(traceback.format_exc().strip().splitlines()[-1])}
            self.write()
            return None

    def close(self) -> None:
        stop_all()
        self.write()
        self.log_handle.close()
        if self.own_work and not self.args.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)


cpu_model = _machine.cpu_model


def mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        return worker_main(argv[1])
    if argv[:1] == ["data"]:
        p = argparse.ArgumentParser(prog="gpu_check.py data")
        p.add_argument("--dest", required=True)
        p.add_argument("--cache", required=True)
        p.add_argument("--result", required=True)
        p.add_argument("--pack", default=None)
        p.add_argument("--standin", nargs=2, type=int, default=[5000, 1000])
        p.add_argument("--workers", type=int, default=None)
        p.add_argument("--smoke", action="store_true")
        return data_main(p.parse_args(argv[1:]))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", default=os.environ.get("OUT") or "runs/gpu_check")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole check (gpu 525, smoke 200)")
    p.add_argument("--pack", default=str(REPO / ".gpudata" / "cifar10.pack"))
    p.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder, removed after)")
    p.add_argument("--keep-work", action="store_true")
    args = p.parse_args(argv)
    check = Check(args)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        return check.run()
    except KeyboardInterrupt as exc:
        check.log(f"interrupted ({exc}); stopping the running steps and writing the report")
        return 1
    finally:
        check.close()


if __name__ == "__main__":
    sys.exit(main())
