"""Clothing1M-shaped throughput on streamed files, and the projected wall time of the Clothing1M recipes (issue #16).

    python benchmarks/clothing1m_throughput.py [--device auto] [--files 6000] [--steps 30] [--methods plremix dividemix]
                                               [--labeled-frac 0.7|measured] [--source-size PX] [--root DIR]
                                               [--budget S] [--json PATH] [--md PATH] [key=value ...]

It writes (into a temporary folder unless ``--root``; never into the repository) a synthetic Clothing1M layout of
``--files`` training JPEGs (``images/<0..9>/<00..99>/<n>.jpg`` with the five list files, labels uniform over the 14
classes; 42 distinct images, 3 per class, encoded once at ``--source-size`` px, default the config's
``dataset.options.image_size``: 256, ~21 KB each, and their bytes written many times). Then, for each method, it
builds the ``<method>-clothing1m`` preset run exactly as ``noisyclr train`` would (``load_config`` →
``prepare_data`` → ``build_context`` → the method, as ``benchmarks/speed.py``) with

    dataset.root=<layout> model.pretrained=null dataset.stream=on dataset.stream_workers=<min(12, cores-1)>
    train.precision=bf16 train.device=<--device> log.progress=off  [+ the key=value overrides, last]

(``train.precision=fp32`` instead when the device is the CPU: a smoke run there, and CPU bf16 autocast crawls)

and times, each after an untimed run of the same thing (cuDNN, allocator, the DataLoader workers started):

* **warm-up**: one warm-up epoch of net 1 (``method.warmup``) on a fresh class-balanced sample of ``--steps`` × 2B
  rows (the recipe's epoch, on a smaller sample);
* **division**: the logits-only eval pass of net 1 over the division sample (all ``--files`` rows; the recipe's is
  64,000 / 32,000), and the whole division (eval pass with the projection head + the GMM): "div − eval" is the GMM
  and the prototype logits. The GMM is also timed alone at the recipe's sample size on synthetic losses;
* **semi**: ``--steps`` semi-supervised steps of net 1 on net 2's division (``method.train_semi``, the pass cut after
  ``--steps`` steps). A division that labels fewer than ``min(steps·B, 0.7·N)`` rows (the nets here start from a
  random init on synthetic images, so the measured division means little) is replaced by a synthetic one labelling
  70% of the rows at random, and the table says so;
* **loader start**: opening an epoch sample and starting its DataLoader workers (one 1-row pass), which the recipe
  pays once per sample and loader;
* for the first method, the same phases with the images **resident** (every file decoded up front into a
  ``DeviceData`` on the device, timed: the raw decode rate of all cores) — the pure-device step rate, decoding
  excluded; streamed ÷ resident shows whether decoding is the bottleneck.

Printed: one Markdown table (images/s and ms/step of every phase), the decode and loader numbers, peak memory, and
the projected wall time of each preset's full recipe (its epochs, samples and batch sizes read from the preset):

    T = W·[2·(o + S_w/r_warm) + P] + (E − W)·[2·o + 2·t_div(S_d) + 2·n_semi·t_step] + E·2·(V + T_c)/r_eval

with E epochs, W warm-up epochs, S_w / S_d the warm-up / division sample sizes, o the loader start, r_warm the
warm-up images/s, P the prototype initialisation (PLReMix: an eval pass of both nets over S_w), t_div(n) =
(t_div − t_gmm)·n/N + t_gmm(n) (the eval part scaled in rows, the GMM measured at n), n_semi = the steps of one pass
over the labeled part f·S_d of the sample at batch B, t_step the semi ms/step, and the per-epoch evaluation of the
release's clean val (V = 14,313) and test (T_c = 10,526) sets by both nets at the eval rate r_eval. f is
``--labeled-frac`` (0.7 unless ``measured`` is asked: the measured fraction of a random-init net on synthetic images
is not Clothing1M's). Streamed rates give the projection; the resident rates give what it would be with free decoding.

``--budget S`` skips the phases that would start with under 10 s left (the GPU check's step passes it); ``--json``
and ``--md`` are rewritten after every phase, so a run cut short keeps what it measured. On the CPU it runs at toy
size for a smoke test, e.g. ``--files 64 --steps 2 --device cpu model.backbone=small_cnn
dataset.options.image_size=40 dataset.crop=32`` (+ ``train.batch_size=8``, or PLReMix's semi pass, which drops the
last partial batch, has no full batch of 64 among 64 files).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

CLASSES = 14
VAL_ROWS, TEST_ROWS = 14_313, 10_526  # the release's clean val and test splits (noisyclr/data/clothing1m.py)
EXTRA_ROWS = 28  # val and test rows of the synthetic layout each (listed and checked, never evaluated here)
PROTOS_PER_CLASS = 3


# --------------------------------------------------------------------------------------------------------------
# the synthetic layout


def make_layout(root: Path, files: int, size: int, seed: int = 0) -> dict:
    """A synthetic Clothing1M folder of ``files`` training JPEGs of ``size``² px (+ :data:`EXTRA_ROWS` val and test
    rows): 42 images encoded once, their bytes written many times. Returns what it wrote."""
    from PIL import Image

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * (256.0 / size)
    protos = []
    for c in range(CLASSES):
        base = np.array([(37 * c) % 255, (91 * c + 60) % 255, (151 * c + 120) % 255], np.float32)
        for v in range(PROTOS_PER_CLASS):
            angle = np.pi * (c + v / PROTOS_PER_CLASS) / CLASSES
            wave = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * (0.05 + 0.01 * c) + rng.uniform(0, 2 * np.pi))
            img = base * (0.55 + 0.35 * wave[..., None]) + rng.normal(0, 10, (size, size, 3))
            buf = io.BytesIO()
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
            protos.append(buf.getvalue())
    total = files + 2 * EXTRA_ROWS
    true = rng.integers(0, CLASSES, total)
    given = np.where(rng.random(total) < 0.38, rng.integers(0, CLASSES, total), true)  # ~38% noise, as the release
    keys, noisy, clean, nbytes = [], [], [], 0
    made = set()
    for i in range(total):
        rel = f"images/{i % 10}/{(i // 10) % 100:02d}/{i}.jpg"
        folder = os.path.dirname(rel)
        if folder not in made:
            (root / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        data = protos[int(true[i]) * PROTOS_PER_CLASS + i % PROTOS_PER_CLASS]
        (root / rel).write_bytes(data)
        nbytes += len(data)
        keys.append(rel)
        if i < files:
            noisy.append(f"{rel} {given[i]}")
        if i % 3 == 0 or i >= files:  # the clean list covers part of the training keys, and val + test
            clean.append(f"{rel} {true[i]}")
    (root / "noisy_train_key_list.txt").write_text("\n".join(keys[:files]) + "\n")
    (root / "noisy_label_kv.txt").write_text("\n".join(noisy) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(clean) + "\n")
    (root / "clean_val_key_list.txt").write_text("\n".join(keys[files:files + EXTRA_ROWS]) + "\n")
    (root / "clean_test_key_list.txt").write_text("\n".join(keys[files + EXTRA_ROWS:]) + "\n")
    return {"files": files, "size": size, "mean_kb": nbytes / total / 1024, "distinct": len(protos),
            "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------------------
# measurement helpers


class LimitedPlan:
    """A plan cut after ``limit`` steps (the semi-supervised pass of ``--steps`` steps); the rest of the pass is
    abandoned (its loaders go back to their pool)."""

    def __init__(self, plan, limit: int):
        self.plan, self.limit = plan, limit
        self.loss_mean = plan.loss_mean

    def __len__(self) -> int:
        return min(len(self.plan), self.limit)

    def steps(self, generator):
        import itertools

        inner = self.plan.steps(generator)
        try:
            yield from itertools.islice(inner, self.limit)
        finally:
            inner.close()


def start_loaders(data, count: int = 1) -> None:
    """Start ``count`` of ``data``'s pooled DataLoaders (persistent workers) with a 1-row pass each, run side by side
    as a semi-supervised pass runs its labeled and unlabeled passes; a resident split does nothing worth timing."""
    n = len(data)
    gens = [data.ordered_chunks(1, rows=(i % n, i % n + 1)) for i in range(count)]
    for g in gens:
        next(g)
    for g in gens:
        for _ in g:
            pass


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Budget:
    def __init__(self, seconds: float | None):
        self.t0 = time.monotonic()
        self.seconds = seconds

    def left(self) -> float:
        return math.inf if self.seconds is None else self.seconds - (time.monotonic() - self.t0)

    def ok(self, need: float = 10.0) -> bool:
        return self.left() >= need


def first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


def shm_gib() -> float | None:
    """Size of /dev/shm, where DataLoader workers hand their batches over (a small one fails a streamed run)."""
    try:
        return shutil.disk_usage("/dev/shm").total / 2**30
    except OSError:
        return None


def fmt(v, spec=".1f", none="–"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return format(v, spec)


def hours(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 3600:.1f} h ({seconds / 60:.0f} min)"


# --------------------------------------------------------------------------------------------------------------
# one method


def build(preset: str, overrides: list[str]):
    """The run as ``noisyclr train`` builds it (engine._run): config, data, context, method."""
    import torch

    from noisyclr.config import load_config
    from noisyclr.context import resolve_device
    from noisyclr.data.prepare import prepare_data
    from noisyclr.engine import build_context, seed_everything
    from noisyclr.methods import get_method

    cfg = load_config(preset, overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    data = prepare_data(cfg)
    ctx = build_context(cfg, data, device)
    method = get_method(cfg.method.name)(cfg, ctx)
    return cfg, data, ctx, method, device


def gmm_time(method_name: str, backend: str, n: int, device) -> float:
    """Seconds of the method's GMM (1-D DivideMix, 2-D PLReMix) on ``n`` synthetic bimodal losses (an untimed fit first)."""
    import torch

    from noisyclr.selection import clean_probability_1d, clean_probability_2d
    from speed import timed

    rng = np.random.default_rng(0)
    clean = rng.random(n) < 0.62
    loss = torch.as_tensor(np.where(clean, rng.gamma(1.0, 0.3, n), rng.gamma(4.0, 0.8, n)), dtype=torch.float32,
                           device=device)
    proto = torch.as_tensor(np.where(clean, rng.gamma(1.0, 0.4, n), rng.gamma(3.0, 0.8, n)), dtype=torch.float32,
                            device=device)
    if method_name == "dividemix":
        fn = lambda: clean_probability_1d(loss, backend=backend)  # noqa: E731
    else:
        fn = lambda: clean_probability_2d(loss, proto, backend=backend)  # noqa: E731
    fn()
    return timed(fn, device)[1]


class Run:
    """The phases of one method; every measurement lands in ``self.r`` (and the report is saved after each)."""

    def __init__(self, name: str, overrides: list[str], args, report: "Report"):
        import torch

        self.name, self.args, self.report = name, args, report
        self.preset = f"{name}-clothing1m"
        self.cfg, self.data, self.ctx, self.method, self.device = build(self.preset, overrides)
        self.torch = torch
        c, m = self.cfg, self.cfg.method
        self.bs = c.train.batch_size
        self.warm_bs = getattr(m, "warmup_batch_size", None) or 2 * self.bs
        self.r = report.methods.setdefault(name, {"preset": self.preset, "phases": {}, "notes": []})
        self.r.update(batch=self.bs, warm_batch=self.warm_bs, rows=len(self.ctx.train),
                      workers=getattr(self.ctx.train, "workers", None), backbone=c.model.backbone,
                      precision=c.train.precision, gmm_backend=m.gmm_backend, eval_batch=c.train.eval_batch_size,
                      drop_last=bool(getattr(m, "drop_last", False)))
        self.div_rows = None
        self.peer_prob = None
        full = self.full_recipe()
        self.r["recipe"] = full

    def full_recipe(self) -> dict:
        from noisyclr.config import load_config

        full = load_config(self.preset, ["model.pretrained=null"])
        m = full.method
        return {"epochs": full.train.epochs, "warmup_epochs": m.warmup_epochs, "warmup_subset": m.warmup_subset,
                "division_subset": m.division_subset, "batch": full.train.batch_size,
                "warm_batch": getattr(m, "warmup_batch_size", None) or 2 * full.train.batch_size}

    def phase(self, key: str, **values) -> None:
        values = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in values.items()}
        self.r["phases"][key] = values
        line = ", ".join(f"{k} {fmt(v, '.4g') if isinstance(v, float) else v}" for k, v in values.items())
        print(f"  {self.name} {key}: {line}", flush=True)
        self.report.save()

    def sample(self, size: int | None):
        """A fresh class-balanced epoch sample of ``size`` rows (all rows when None), as the recipe draws it."""
        rows = self.method.epoch_sample(size)
        return rows if rows is not None else self.torch.arange(len(self.ctx.train), device=self.ctx.device)

    # ---------------------------------------------------------------------------------------------- phases
    def loader_start(self) -> None:
        from speed import timed

        def once():
            with self.ctx.train_rows(self.sample(2 * self.warm_bs)):
                start_loaders(self.ctx.train)

        once()  # untimed: the first start pays imports in the workers
        _, t = timed(once, self.device)
        self.phase("loader_start", seconds=t)

    def warmup(self, mode: str) -> None:
        """One warm-up epoch of net 1 on a fresh balanced sample of ``steps``·2B rows (untimed: one of 2 batches)."""
        from speed import timed

        def epoch(size):
            with self.ctx.train_rows(self.sample(size)):
                start_loaders(self.ctx.train)  # the workers' start is the loader_start row, not this one
                return timed(lambda: self.method.warmup(0, 0), self.device)

        epoch(2 * self.warm_bs)
        out, t = epoch(self.args.steps * self.warm_bs)
        self.phase(f"warmup_{mode}", seconds=t, images=out["images"], steps=out["steps"], batch=self.warm_bs,
                   img_s=out["images"] / t if out["images"] else None,
                   ms_step=1000 * t / out["steps"] if out["steps"] else None)

    def division(self) -> None:
        """The division sample (kept for the semi phase), net 2's division (untimed, the peer's), then net 1's eval
        pass and whole division, timed."""
        from speed import timed

        m, ctx = self.method, self.ctx
        self.div_rows = self.sample(self.cfg.method.division_subset)
        with ctx.train_rows(self.div_rows):
            start_loaders(ctx.train, 2)
            if hasattr(m, "init_prototypes"):
                _, t_proto = timed(m.init_prototypes, self.device)
                self.phase("prototypes", seconds=t_proto, rows=len(ctx.train), nets=2,
                           img_s=2 * len(ctx.train) / t_proto)
            epoch = self.cfg.method.warmup_epochs
            m.divide(1, epoch)  # untimed warm-up of the pass; net 2's division is net 1's semi-supervised split
            (_,), t_eval = timed(lambda: ctx.eval_logits([m.nets[0]], ctx.train), self.device)
            _, t_div = timed(lambda: m.divide(0, epoch), self.device)
            n = len(ctx.train)
            self.phase("eval_streamed", seconds=t_eval, images=n, img_s=n / t_eval, batch=self.cfg.train.eval_batch_size)
            self.phase("division_streamed", seconds=t_div, images=n, img_s=n / t_div,
                       rest_s=max(t_div - t_eval, 0.0))
            peer = m.last_division[1]
            labeled = m.labeled_mask(peer)
            measured = float(labeled.float().mean())
            need = min(self.args.steps * self.bs, int(0.7 * n))
            synthetic = int(labeled.sum()) < max(need, 2)
            if synthetic:
                g = self.torch.Generator(device=ctx.device).manual_seed(0)
                coin = self.torch.rand(n, generator=g, device=ctx.device) < 0.7
                peer = self.torch.where(coin, 0.9, 0.1).to(peer.dtype)
                m.last_division[1] = peer
            self.peer_prob = peer
            self.r.update(labeled_frac_measured=measured, semi_division="synthetic (70% labeled)" if synthetic
                          else "measured")
            if synthetic:
                self.r["notes"].append(f"net 2's division labeled {measured:.1%} of the {n} rows (< {need} rows for "
                                       f"{self.args.steps} steps): the semi steps ran on a synthetic division "
                                       "labelling 70% at random")
        for size, key in ((self.r["recipe"]["division_subset"], "gmm_recipe_s"), (n, "gmm_rows_s")):
            if size:
                self.r[key] = gmm_time(self.name, self.cfg.method.gmm_backend, int(size), self.device)
        self.report.save()

    def semi(self, mode: str) -> None:
        """``steps`` semi-supervised steps of net 1 on net 2's division, inside the division sample (untimed: 2)."""
        from speed import timed

        m, ctx = self.method, self.ctx
        original = m.semi_plan
        epoch = self.cfg.method.warmup_epochs
        with ctx.train_rows(self.div_rows):
            start_loaders(ctx.train, 2)
            try:
                m.semi_plan = lambda *a, **k: LimitedPlan(original(*a, **k), 2)
                m.train_semi(0, 1, self.peer_prob, epoch)
                m.semi_plan = lambda *a, **k: LimitedPlan(original(*a, **k), self.args.steps)
                out, t = timed(lambda: m.train_semi(0, 1, self.peer_prob, epoch), self.device)
            finally:
                del m.semi_plan  # the class's method again
        if not out.get("steps"):
            self.r["notes"].append(f"semi ({mode}) ran no step: the labeled part of {len(self.div_rows)} rows holds "
                                   f"less than one batch of {self.bs}; use more --files or a smaller train.batch_size")
        self.phase(f"semi_{mode}", seconds=t, images=out["images"], steps=out.get("steps", 0), batch=self.bs,
                   img_s=out["images"] / t if out["images"] else None,
                   ms_step=1000 * t / out["steps"] if out.get("steps") else None)

    def make_resident(self) -> None:
        """Decode every training file up front (all cores) into a DeviceData that replaces the streamed split."""
        from noisyclr.data.folder import decode_images
        from noisyclr.data.loader import DeviceData
        from noisyclr.data.table import ImageTable

        table = self.data.train
        procs = cores()
        t0 = time.perf_counter()
        images, _ = decode_images(table.root, table.paths, image_size=table.image_size, workers=procs)
        t_decode = time.perf_counter() - t0
        self.streamed = self.ctx.train
        self.ctx.train = DeviceData(ImageTable(images, table.labels, None, table.class_names), self.device)
        del images
        self.phase("decode_up_front", seconds=t_decode, images=len(table), processes=procs,
                   img_s=len(table) / t_decode, per_process_img_s=len(table) / t_decode / procs)

    def eval_resident(self) -> None:
        from speed import timed

        ctx, net = self.ctx, self.method.nets[0]
        ctx.eval_logits([net], ctx.train)
        (_,), t = timed(lambda: ctx.eval_logits([net], ctx.train), self.device)
        self.phase("eval_resident", seconds=t, images=len(ctx.train), img_s=len(ctx.train) / t,
                   batch=self.cfg.train.eval_batch_size)

    def close(self) -> None:
        for split in (self.ctx.train, getattr(self, "streamed", None)):
            close = getattr(split, "close", None)
            if close is not None:
                close()


# --------------------------------------------------------------------------------------------------------------
# projection and report


def projection(r: dict, frac: float, mode: str = "streamed") -> dict | None:
    """The full recipe's wall time (module docstring) from the phases of ``r``; None when a needed phase is missing."""
    ph, rec = r["phases"], r["recipe"]
    warm, ev, div, semi = (ph.get(f"warmup_{mode}"), ph.get(f"eval_{mode}"), ph.get("division_streamed"),
                           ph.get(f"semi_{mode}"))
    if not (warm and ev and div and semi) or "gmm_rows_s" not in r:
        return None
    if not (warm.get("img_s") and ev.get("img_s") and semi.get("ms_step")):
        return None  # a phase ran no step (a batch larger than its rows)
    E, W = rec["epochs"], rec["warmup_epochs"]
    n = div["images"]
    s_w = rec["warmup_subset"] or n
    s_d = rec["division_subset"] or n
    o = ph.get("loader_start", {}).get("seconds", 0.0) if mode == "streamed" else 0.0
    r_warm, r_eval = warm["img_s"], ev["img_s"]
    # the division's forward part, per row: measured streamed; resident: the streamed one scaled by the eval rates
    div_fwd = max(div["seconds"] - r["gmm_rows_s"], 0.0) / n
    if mode != "streamed":
        div_fwd *= ph["eval_streamed"]["img_s"] / r_eval
    t_gmm = r.get("gmm_recipe_s", r["gmm_rows_s"] * s_d / n)
    t_div = div_fwd * s_d + t_gmm
    labeled = int(frac * s_d)
    B = r["batch"]  # the timed batch (t_step is its step time); the preset's unless overridden, as speed.py
    n_semi = labeled // B if r["drop_last"] else labeled // B + (labeled % B >= 2)
    t_step = semi["ms_step"] / 1000
    proto = 2 * s_w / r_eval if "prototypes" in ph else 0.0
    warm_epoch = 2 * (o + s_w / r_warm) + proto
    semi_epoch = 2 * o + 2 * t_div + 2 * n_semi * t_step
    eval_epoch = 2 * (VAL_ROWS + TEST_ROWS) / r_eval
    total = W * warm_epoch + (E - W) * semi_epoch + E * eval_epoch
    return {"total_s": total, "warm_epoch_s": warm_epoch, "semi_epoch_s": semi_epoch, "eval_epoch_s": eval_epoch,
            "t_div_s": t_div, "t_gmm_s": t_gmm, "n_semi": n_semi, "t_step_s": t_step, "loader_s": o,
            "labeled_frac": frac, "E": E, "W": W, "S_w": s_w, "S_d": s_d, "B": B}


class Report:
    def __init__(self, args, stamp: dict):
        self.args, self.stamp = args, stamp
        self.methods: dict[str, dict] = {}
        self.layout: dict = {}
        self.skipped: list[str] = []
        self.errors: list[str] = []
        self.peak_gib = None
        self.done = False

    def frac(self, r: dict) -> tuple[float, str]:
        if self.args.labeled_frac == "measured" and "labeled_frac_measured" in r:
            return r["labeled_frac_measured"], "measured"
        if self.args.labeled_frac == "measured":
            return 0.7, "0.7 (no measured division)"
        return float(self.args.labeled_frac), "given (--labeled-frac)"

    def as_dict(self) -> dict:
        out = {"stamp": self.stamp, "layout": self.layout, "methods": self.methods, "skipped": self.skipped,
               "errors": self.errors, "peak_gib": self.peak_gib, "done": self.done, "projections": {}}
        for name, r in self.methods.items():
            frac, _ = self.frac(r)
            out["projections"][name] = {mode: projection(r, frac, mode) for mode in ("streamed", "resident")}
        return out

    def markdown(self) -> str:
        s, lay = self.stamp, self.layout
        lines = [f"{s['date']} · {s['device']} · torch {s['torch']} · commit {s['commit']} · "
                 f"{lay.get('files', '?'):,} synthetic {lay.get('size', '?')}² JPEGs (~{fmt(lay.get('mean_kb'), '.0f')} KB, "
                 f"{lay.get('distinct', '?')} distinct), written in {fmt(lay.get('seconds'), '.1f')} s · "
                 f"{s['steps']} steps a phase · {s.get('cores')} cores, /dev/shm {fmt(s.get('shm_gib'), '.1f')} GiB", ""]
        lines += [f"Overrides: `{' '.join(s['overrides'])}`", ""]
        lines += ["| method | phase | data | batch | steps | images | s | img/s | ms/step |",
                  "|---|---|---|---|---|---|---|---|---|"]
        names = {"loader_start": "loader start (epoch sample + workers, 1-row pass)",
                 "warmup_streamed": "warm-up epoch, 1 net", "warmup_resident": "warm-up epoch, 1 net",
                 "prototypes": "prototype init (eval, 2 nets)",
                 "eval_streamed": "division eval pass (logits)", "eval_resident": "division eval pass (logits)",
                 "division_streamed": "division (eval + proj + GMM)",
                 "semi_streamed": "semi-supervised steps, 1 net", "semi_resident": "semi-supervised steps, 1 net",
                 "decode_up_front": "decode every file up front"}
        for name, r in self.methods.items():
            for key, ph in r["phases"].items():
                data = ("resident" if key.endswith("resident") else
                        f"{ph.get('processes')} processes" if key == "decode_up_front" else
                        f"streamed, {r.get('workers')} workers")
                batch = ph.get("batch", "–")
                lines.append(f"| {name} | {names.get(key, key)} | {data} | {batch} | {ph.get('steps', '–')} "
                             f"| {ph.get('images', ph.get('rows', '–'))} | {fmt(ph.get('seconds'), '.2f')} "
                             f"| {fmt(ph.get('img_s'), '.0f')} | {fmt(ph.get('ms_step'), '.1f')} |")
        lines.append("")
        for name, r in self.methods.items():
            ph = r["phases"]
            bits = [f"**{name}**: {r.get('backbone')}, {r.get('precision')}, batch {r.get('batch')} "
                    f"(warm-up {r.get('warm_batch')}), eval batch {r.get('eval_batch')}, GMM {r.get('gmm_backend')}"]
            if "division_streamed" in ph:
                bits.append(f"div − eval {fmt(ph['division_streamed'].get('rest_s'), '.2f')} s at "
                            f"{ph['division_streamed']['images']} rows")
            if "gmm_recipe_s" in r:
                bits.append(f"GMM alone {fmt(r.get('gmm_rows_s'), '.3f')} s at {r['rows']} rows, "
                            f"{fmt(r['gmm_recipe_s'], '.3f')} s at the recipe's {r['recipe']['division_subset']:,} "
                            "(synthetic losses)")
            if "labeled_frac_measured" in r:
                bits.append(f"net 2's division labeled {r['labeled_frac_measured']:.1%}; semi steps on the "
                            f"{r.get('semi_division')} division")
            lines.append("- " + "; ".join(bits))
            for note in r["notes"]:
                lines.append(f"  - {note}")
            ratios, slow = [], []
            for a, b in (("warmup", "warm-up"), ("eval", "eval"), ("semi", "semi")):
                st, re_ = ph.get(f"{a}_streamed"), ph.get(f"{a}_resident")
                if st and re_ and st.get("img_s") and re_.get("img_s"):
                    ratio = st["img_s"] / re_["img_s"]
                    ratios.append(f"{b} {ratio:.0%}")
                    if ratio < 0.85:
                        slow.append(b)
            if ratios:
                verdict = (f"decoding limits {', '.join(slow)} (under 85% of the resident rate)" if slow else
                           "decoding keeps up with the device in every phase (all at least 85% of resident)")
                lines.append(f"  - streamed ÷ resident images/s: {', '.join(ratios)} — {verdict}")
        if self.peak_gib is not None:
            lines.append(f"- peak memory: {self.peak_gib:.2f} GiB ({'GPU, allocated' if self.stamp['cuda'] else 'host RSS'})")
        lines.append("")
        lines += ["Projected full recipe (times scaled from these phases; formula below):", ""]
        lines += ["| preset | recipe | labeled fraction | warm-up epoch | semi epoch (2 div + 2 semi) | eval / epoch "
                  "| projected, streamed | if decoding were free |", "|---|---|---|---|---|---|---|---|"]
        for name, r in self.methods.items():
            frac, why = self.frac(r)
            p, q = projection(r, frac, "streamed"), projection(r, frac, "resident")
            rec = r["recipe"]
            recipe = (f"{rec['epochs']} ep ({rec['warmup_epochs']} warm-up), samples {rec['warmup_subset']:,} / "
                      f"{rec['division_subset']:,}, batch {r['batch']}"
                      + ("" if r["batch"] == rec["batch"] else f" (timed; the preset's is {rec['batch']})"))
            if p is None:
                lines.append(f"| {r['preset']} | {recipe} | {frac:.2f} {why} | – | – | – | not measured (a phase "
                             "is missing) | – |")
                continue
            lines.append(f"| {r['preset']} | {recipe} | {frac:.2f} {why} | {p['warm_epoch_s'] / 60:.1f} min "
                         f"| {p['semi_epoch_s'] / 60:.1f} min ({p['n_semi']} steps a pass) "
                         f"| {p['eval_epoch_s']:.0f} s | **{hours(p['total_s'])}** "
                         f"| {hours(q['total_s']) if q else '–'} |")
        lines += ["", "    T = W·[2·(o + S_w/r_warm) + P] + (E − W)·[2·o + 2·t_div(S_d) + 2·n_semi·t_step] "
                  f"+ E·2·({VAL_ROWS:,} + {TEST_ROWS:,})/r_eval",
                  "    t_div(n) = (t_div − t_gmm)·n/N + t_gmm(n),  n_semi = steps of one pass over f·S_d rows at batch B,  "
                  "P = 2·S_w/r_eval (PLReMix's prototypes)",
                  "",
                  "o = loader start, r_warm / r_eval = warm-up / eval images/s, t_step = semi s/step, all of one net on "
                  "this machine; the projection is one process on one device (no torchrun), streamed; 'if decoding "
                  "were free' uses the resident rates (o = 0). Not included: process start, listing the 1M keys, "
                  "checkpoints, PLReMix's per-pass prototype update (on-device, small)."]
        if self.skipped:
            lines += ["", f"Skipped (budget): {', '.join(self.skipped)}"]
        if self.errors:
            lines += ["", *[f"ERROR: {e}" for e in self.errors]]
        if not self.done:
            lines += ["", "(partial: the run did not finish)"]
        return "\n".join(lines) + "\n"

    def save(self) -> None:
        if self.args.json:
            _atomic(Path(self.args.json), json.dumps(self.as_dict(), indent=1, default=str))
        if self.args.md:
            _atomic(Path(self.args.md), self.markdown())


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="train.device: auto | cuda | cpu")
    p.add_argument("--files", type=int, default=6000, help="training JPEGs of the synthetic layout")
    p.add_argument("--steps", type=int, default=30, help="steps of each timed phase (warm-up sample = steps·2B rows)")
    p.add_argument("--methods", nargs="+", default=["plremix", "dividemix"],
                   help="plremix and/or dividemix (presets <method>-clothing1m); the first also runs resident")
    p.add_argument("--labeled-frac", default="0.7", help="labeled fraction of the projection, or 'measured'")
    p.add_argument("--source-size", type=int, default=None, help="side of the written JPEGs (default: the "
                   "config's dataset.options.image_size, 256; larger ones are resized on decode, as the real files)")
    p.add_argument("--workers", type=int, default=None, help="dataset.stream_workers (default min(12, cores - 1))")
    p.add_argument("--root", type=Path, default=None, help="write the layout here (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the layout")
    p.add_argument("--budget", type=float, default=None, help="seconds: skip phases that would start with < 10 s left")
    p.add_argument("--json", default=None)
    p.add_argument("--md", default=None)
    p.add_argument("overrides", nargs="*", help="key=value config overrides, applied last")
    args = p.parse_args(argv)
    # "--methods plremix key=value": the overrides after the method names are overrides, not methods
    args.overrides = [m for m in args.methods if "=" in m] + list(args.overrides)
    args.methods = [m for m in args.methods if "=" not in m]
    bad = [m for m in args.methods if m not in ("plremix", "dividemix")]
    if bad or not args.methods:
        p.error(f"--methods: plremix and/or dividemix, not {' '.join(bad) or 'nothing'}")
    if args.labeled_frac != "measured":
        try:
            float(args.labeled_frac)
        except ValueError:
            p.error(f"--labeled-frac: a number or 'measured', not {args.labeled_frac!r}")
    budget = Budget(args.budget)

    import torch

    from noisyclr.config import load_config
    from noisyclr.context import resolve_device
    from speed import device_name, peak_memory_gib

    workers = args.workers if args.workers is not None else max(1, min(12, cores() - 1))
    root = args.root or Path(tempfile.mkdtemp(prefix="nc-c1m-"))
    own_root = args.root is None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    commit = os.environ.get("GPU_CHECK_COMMIT") or commit or "unknown"
    # bf16 on CUDA (the preset's AMP); on the CPU, a smoke run, fp32 (CPU autocast to bf16 is far slower)
    precision = "bf16" if resolve_device(args.device).type == "cuda" else "fp32"
    base = [f"dataset.root={root}", "model.pretrained=null", "dataset.stream=on", f"dataset.stream_workers={workers}",
            f"train.precision={precision}", f"train.device={args.device}", "log.progress=off"]
    overrides = base + list(args.overrides)
    device = resolve_device(load_config(f"{args.methods[0]}-clothing1m", overrides).train.device)
    stamp = {"date": datetime.date.today().isoformat(), "device": device_name(device), "torch": torch.__version__,
             "cuda": device.type == "cuda", "commit": commit, "steps": args.steps, "cores": cores(),
             "shm_gib": shm_gib(),
             "overrides": ["dataset.root=<layout>"] + overrides[1:]}
    report = Report(args, stamp)
    rc = 0
    try:
        size = args.source_size or int(load_config(f"{args.methods[0]}-clothing1m", overrides).dataset.options.get(
            "image_size", 256))
        root.mkdir(parents=True, exist_ok=True)
        print(f"writing {args.files} synthetic {size}² JPEGs under {root} ...", flush=True)
        report.layout = make_layout(root, args.files, size)
        print(f"  {report.layout['seconds']:.1f} s, ~{report.layout['mean_kb']:.0f} KB each", flush=True)
        report.save()
        for i, name in enumerate(args.methods):
            if not budget.ok(20):
                report.skipped.append(f"{name} (all)")
                continue
            run = None
            try:
                run = Run(name, overrides, args, report)
                phases = [("loader_start", run.loader_start), ("warmup_streamed", lambda: run.warmup("streamed")),
                          ("division", run.division), ("semi_streamed", lambda: run.semi("streamed"))]
                if i == 0:
                    phases += [("decode_up_front", run.make_resident),
                               ("warmup_resident", lambda: run.warmup("resident")),
                               ("eval_resident", run.eval_resident), ("semi_resident", lambda: run.semi("resident"))]
                for key, fn in phases:
                    if key.startswith("semi") and run.peer_prob is None:
                        report.skipped.append(f"{name} {key} (no division)")
                        continue
                    if key.endswith("resident") and key != "decode_up_front" and getattr(run, "streamed", None) is None:
                        report.skipped.append(f"{name} {key} (nothing resident)")
                        continue
                    if not budget.ok():
                        report.skipped.append(f"{name} {key}")
                        continue
                    try:  # one failed phase (a worker killed, memory) never costs the others
                        fn()
                    except Exception as exc:  # noqa: BLE001
                        traceback.print_exc()
                        report.errors.append(f"{name} {key}: {type(exc).__name__}: {first_line(exc)}")
                        report.save()
            except Exception as exc:  # noqa: BLE001 - building the run failed
                traceback.print_exc()
                report.errors.append(f"{name}: {type(exc).__name__}: {first_line(exc)}")
            finally:
                report.peak_gib = max(report.peak_gib or 0.0, peak_memory_gib(device))
                if run is not None:
                    run.close()
                run = None  # its nets and loaders go before the next method
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        report.done = True
    except KeyboardInterrupt:
        report.errors.append("interrupted (SIGINT: the time budget ran out)")
        rc = 130
    except Exception as exc:  # noqa: BLE001 - what was measured is still reported
        traceback.print_exc()
        report.errors.append(f"{type(exc).__name__}: {first_line(exc)}")
    finally:
        if report.errors and rc == 0:
            rc = 1
        report.save()
        print("\n" + report.markdown(), flush=True)
        if own_root and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
