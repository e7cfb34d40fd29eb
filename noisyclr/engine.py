"""The training loop: epochs, evaluation, logs, atomic checkpoints and exact resume.

``run_training(cfg, out_dir)`` writes the run folder of the design contract:

* ``config.yaml``    the fully resolved config;
* ``train_labels.csv`` the labels trained on and the true ones (the saved noise);
* ``metrics.jsonl``  one row per epoch (``epoch`` is 1-based: row k is after k epochs);
* ``checkpoint.pt``  latest state, written atomically after every epoch;
* ``summary.json``   the machine-readable result;
* ``labels.csv``     per-sample division, for methods that divide the data.

A checkpoint holds the networks, optimisers, the method's own state, every RNG state (torch, NumPy, Python, the
data generator, CUDA) and the epoch. The learning rate is a pure function of (epoch, step), so nothing else is
needed: a run killed after epoch k and resumed with ``--resume`` ends bit-identical (on the CPU) to one never
interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .config import Config, load_saved_config, save_config
from .context import RunContext, resolve_device
from .distributed import Distributed
from .data.loader import DeviceData
from .data.splits import open_split
from .data.prepare import check_saved_labels, prepare_data, save_labels
from .errors import UserError
from .io import atomic_write, atomic_write_json, atomic_write_text
from .methods import get_method
from .metrics import accuracy, topk_accuracy
from .rundir import CHECKPOINT, CONFIG, SUMMARY, RunFolder, check_new, load_resume_config, write_error
from .tracking import RunLogger, read_metrics


# ------------------------------------------------------------------------------------------------------ RNG state


def capture_rng(generator: torch.Generator) -> dict:
    """Every RNG state that influences training, in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------------ checkpoint


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` through a temp file + rename, so a crash never leaves a half-written checkpoint.

    torch's zip writer reports a failed write (a full disk) as a RuntimeError; it is raised as the OSError it is,
    so that the caller can say what happened (the earlier checkpoint is untouched either way)."""
    try:
        atomic_write(path, lambda f: torch.save(payload, f), mode="wb")
    except RuntimeError as exc:
        if "write" not in str(exc).lower():
            raise
        import errno
        import shutil

        full = shutil.disk_usage(path.parent).free < 64 * 2**20
        raise OSError(errno.ENOSPC if full else errno.EIO, "no space left on device" if full else
                      f"the checkpoint write failed ({str(exc).splitlines()[0][:120]})", str(path)) from None


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a missing or corrupt file is a UserError."""
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; resume needs a run folder written by 'noisyclr train --out'")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise UserError(
            f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}); "
            "restore it from a backup or start a new run with --out"
        ) from None
    method = payload.get("method") if isinstance(payload, dict) else None
    if (not isinstance(method, dict) or not isinstance(payload.get("epoch"), int) or payload["epoch"] < 0
            or not isinstance(method.get("nets"), list) or not isinstance(method.get("optimizers", []), list)):
        raise UserError(f"checkpoint {path} is not a noisyclr checkpoint; start a new run with --out")
    return payload


def load_method_state(method, payload: dict, path: Path) -> None:
    """``method.load_state_dict`` of a checkpoint, a UserError when the checkpoint belongs to another method or
    model (its networks, optimisers or method state do not fit)."""
    try:
        method.load_state_dict(payload["method"])
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint {path} does not fit this run's method {method.cfg.method.name} and model "
                        f"({detail}); it was written by another config: start a new run with --out") from None


# ------------------------------------------------------------------------------------------------------ the run


@dataclass
class RunResult:
    out_dir: Path
    summary: dict
    metrics: list[dict]


def _progress_enabled(cfg: Config) -> bool:
    if cfg.log.progress == "on":
        return True
    if cfg.log.progress == "off":
        return False
    return sys.stderr.isatty()


def build_context(cfg: Config, data, device: torch.device, dist: Distributed | None = None) -> RunContext:
    """Tables onto the device, one seeded data generator, and the precision machinery.

    Under torchrun (``dist``) every rank seeds the same generator (so all ranks draw the same global batches) and
    the training split hands each rank its shard of every batch.
    """
    dist = dist or Distributed.single()
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.train.seed)
    scaler = None
    if cfg.train.precision == "fp16" and device.type == "cuda":
        scaler = torch.amp.GradScaler("cuda")
    train = open_split(data.train, device)
    train.shard = dist.shard
    return RunContext(
        cfg=cfg,
        device=device,
        train=train,
        test=open_split(data.test, device),
        mean=data.mean,
        std=data.std,
        generator=generator,
        class_names=data.train.class_names,
        progress_enabled=_progress_enabled(cfg) and dist.is_main,
        scaler=scaler,
        holdout=open_split(data.holdout, device) if getattr(data, "holdout", None) is not None else None,
        extra_test={name: open_split(t, device) for name, t in getattr(data, "extra_test", {}).items()},
        dist=dist,
    )


def run_training(
    cfg: Config | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overrides: list[str] | None = None,
    stop_after_epoch: int | None = None,
) -> RunResult:
    """Train ``cfg`` into ``out_dir``, or continue the run in ``out_dir`` when ``resume``.

    ``stop_after_epoch`` ends the process's work after that many epochs as if it had been killed (the checkpoint
    is written, the summary is not): used to test resume.
    """
    from .config import check_paths

    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT
    writer = int(os.environ.get("RANK", "0")) == 0  # under torchrun rank 0 alone owns the run folder
    if resume:  # the saved config (+ overrides) decides the device, hence the process-group backend
        cfg = load_resume_config(out_dir, overrides, check_lock=writer)
    elif cfg is None:
        raise ValueError("cfg is required unless resuming")
    elif writer:
        check_new(out_dir)
    check_paths(cfg)
    folder = RunFolder(out_dir, new=not resume) if writer else None
    # the folder's exit removes a new run that failed before its first checkpoint, then releases the lock
    with folder or contextlib.nullcontext():
        try:
            dist = Distributed.from_env(cfg.train.device)
            try:
                return _run(cfg, out_dir, ckpt_path, dist, resume, stop_after_epoch)
            finally:
                dist.close()
        except OSError as exc:
            if folder is None:
                raise
            folder.discard()  # before the message, which says whether a checkpoint is left
            raise folder.write_error(exc) from None


def _run(cfg, out_dir: Path, ckpt_path: Path, dist: Distributed, resume: bool, stop_after_epoch):
    """:func:`run_training` in this process; under torchrun every rank runs it and only rank 0 writes files
    (the run folder must be on a file system every rank sees)."""
    # a resumed run without a checkpoint is one killed before its first (load_resume_config allows only that):
    # it starts again from epoch 0 with its saved config
    payload = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if payload is not None and cfg.train.epochs < payload["epoch"]:
        raise UserError(f"the checkpoint in {out_dir} is after epoch {payload['epoch']}, more than "
                        f"train.epochs={cfg.train.epochs}; resume with train.epochs >= {payload['epoch']}")

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = dist.device(resolve_device(cfg.train.device))
    seed_everything(cfg.train.seed)
    data = prepare_data(cfg)
    check_data_limits(cfg, data)
    if resume:
        check_saved_labels(data.train, out_dir)

    method_class = get_method(cfg.method.name)
    if dist.enabled and not method_class.distributed:
        raise UserError(
            f"method {cfg.method.name} does not run under torchrun yet (methods that do: "
            f"{', '.join(distributed_methods())}); start it as one process"
        )
    ctx = build_context(cfg, data, device, dist)
    method = method_class(cfg, ctx)
    if dist.is_main:  # written once everything that can be refused before training has been checked
        if not (resume and (out_dir / "train_labels.csv").is_file()):
            save_labels(data.train, out_dir)
        save_config(cfg, out_dir / CONFIG)

    start_epoch, wall_before, train_time, images_total = 0, 0.0, 0.0, 0
    best_val = BestValNets(method.eval_nets()) if cfg.train.select == "best_val" else None
    if payload is not None:
        load_method_state(method, payload, ckpt_path)
        if best_val is not None and payload.get("best_val") is not None:
            best_val.load_state_dict(payload["best_val"])
        restore_rng(payload["rng"], ctx.generator)
        start_epoch = int(payload["epoch"])
        wall_before = float(payload.get("wall_time_s", 0.0))
        train_time = float(payload.get("train_time_s", 0.0))
        images_total = int(payload.get("images", 0))

    logger = RunLogger(out_dir, cfg, resume_after_epoch=start_epoch) if dist.is_main else _NoLogger()
    t_start = time.perf_counter()
    epochs = cfg.train.epochs
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            stats = method.train_epoch(epoch)
            t_train = time.perf_counter() - t0
            train_time += t_train
            images_total += int(dist.sum_scalar(stats.pop("images", 0)))  # every rank's rows
            if dist.enabled and "train_loss" in stats:
                stats["train_loss"] = dist.mean_scalar(stats["train_loss"])
            row = {"epoch": epoch + 1, **evaluate_method(method, ctx), **stats}
            row["epoch_time_s"] = time.perf_counter() - t0
            row["train_time_s"] = t_train
            if best_val is not None:
                best_val.update(row)
            logger.log(row)
            last = epoch + 1 == epochs
            if dist.is_main and (last or (epoch + 1) % max(cfg.log.checkpoint_every, 1) == 0):
                save_checkpoint(
                    ckpt_path,
                    {
                        "epoch": epoch + 1,
                        "method": method.state_dict(),
                        "rng": capture_rng(ctx.generator),
                        "wall_time_s": wall_before + time.perf_counter() - t_start,
                        "train_time_s": train_time,
                        "images": images_total,
                        "version": __version__,
                        "best_val": None if best_val is None else best_val.state_dict(),
                    },
                )
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and not last:
                logger.close()
                dist.barrier()
                return RunResult(out_dir, {}, read_metrics(out_dir))
    finally:
        logger.close()

    # every rank: collective eval passes (none when no epoch ran in this process and none was checkpointed)
    selected = best_val.scores(ctx) if best_val is not None and None not in best_val.states else None
    report = method.sample_report()  # every rank: the final division is a collective eval pass
    if not dist.is_main:
        dist.barrier()  # rank 0 has written the results
        return RunResult(out_dir, json.loads((out_dir / SUMMARY).read_text()), read_metrics(out_dir))
    metrics = read_metrics(out_dir)
    summary = build_summary(cfg, data, device, metrics, wall_before + time.perf_counter() - t_start, train_time, images_total)
    summary["world_size"] = dist.world
    if selected is not None:
        summary["selected"] = selected
        summary["test_acc_selected"] = selected["test_acc"]
    atomic_write_json(out_dir / SUMMARY, summary)
    if report is not None:
        write_labels_csv(out_dir / "labels.csv", ctx.train, report)
        _write_label_issues(out_dir)
    if cfg.log.report:  # last, from the files above; a failure to render is one warning line, never a failed run
        from .report import report_after_run

        report_after_run(out_dir, data.train, method)
    dist.barrier()
    return RunResult(out_dir, summary, metrics)


def restore_method(cfg: Config, data, checkpoint: Path, device: torch.device | None = None):
    """The method of a finished run rebuilt from its saved config, prepared data and checkpoint (for the pages and
    tools that read a trained run: ``noisyclr report``'s recomputed division)."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = device or resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    ctx = build_context(cfg, data, device)
    method = get_method(cfg.method.name)(cfg, ctx)
    load_method_state(method, load_checkpoint(checkpoint), checkpoint)
    return method


def _write_label_issues(out_dir: Path) -> None:
    """label_issues.csv + issues_summary.json from the labels.csv just written (docs/detect.md); the run's own
    results are on disk already, so a failure here is one warning line, not a failed run."""
    from .detect import detect_run

    try:
        detect_run(out_dir)
    except Exception as exc:  # noqa: BLE001 (the run is complete; only the ranking is missing)
        print(f"noisyclr: warning: label_issues.csv not written ({type(exc).__name__}: {exc}); "
              f"run 'noisyclr detect {out_dir}'", file=sys.stderr)


class _NoLogger:
    """The logger of a rank other than 0: logs nothing."""

    def log(self, row: dict) -> None:
        pass

    def close(self) -> None:
        pass


def check_data_limits(cfg: Config, data) -> None:
    """The numbers whose limit is the prepared data's size (one-line UserErrors, before anything is written)."""
    n, classes = len(data.train), data.train.num_classes
    if cfg.train.batch_size > n:
        raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the {n} training samples; "
                        f"e.g. train.batch_size={min(64, n)}")
    cfg.method.check_data(cfg, n, classes)
    from .augment import check_crop

    check_crop(cfg.dataset.crop, data.train.image_shape[:2])  # (H, W, C) tables: before anything is written
    from .models import MIN_INPUT_SIDE

    least = MIN_INPUT_SIDE.get(cfg.model.backbone)
    sides = {"dataset.crop" if cfg.dataset.crop else "the image side": cfg.dataset.crop or min(data.train.image_shape[:2])}
    if getattr(cfg.method, "multi_crop", False):
        sides["method.multi_crop_small"] = cfg.method.multi_crop_small
    for key, side in sides.items():
        if least is not None and side < least:
            raise UserError(f"{cfg.model.backbone} needs inputs of at least {least}x{least}, but {key} is {side}; "
                            f"give a larger dataset.crop / dataset.options.image_size, or a backbone for small images")
    if cfg.train.select == "best_val" and getattr(data, "holdout", None) is None:
        raise UserError(f"train.select=best_val needs a clean validation split, which dataset {cfg.dataset.name} "
                        "does not ship; set dataset.clean_holdout=N (e.g. 1000) or train.select=last")


class BestValNets:
    """Each net's weights at the epoch of its best clean-val accuracy (``train.select=best_val``): DivideMix's
    Clothing1M protocol selects net1 and net2 separately and tests their ensemble once at the end. The first
    epoch with the best accuracy wins (ties keep the earlier nets)."""

    def __init__(self, nets: list):
        self.nets = nets
        self.acc = [float("-inf")] * len(nets)
        self.epoch = [0] * len(nets)
        self.states: list[dict | None] = [None] * len(nets)

    def update(self, row: dict) -> None:
        for i, net in enumerate(self.nets):
            acc = row.get(f"val_acc_net{i + 1}", row.get("val_acc")) if len(self.nets) > 1 else row.get("val_acc")
            if acc is not None and acc > self.acc[i]:
                self.acc[i], self.epoch[i] = acc, row["epoch"]
                self.states[i] = {k: v.detach().clone() for k, v in net.state_dict().items()}

    def state_dict(self) -> dict:
        return {"acc": self.acc, "epoch": self.epoch, "states": self.states}

    def load_state_dict(self, state: dict) -> None:
        self.acc, self.epoch, self.states = list(state["acc"]), list(state["epoch"]), list(state["states"])

    @torch.no_grad()
    def scores(self, ctx: RunContext) -> dict:
        """The test (and extra test) scores of the selected nets, the last epoch's weights put back after."""
        last = [{k: v.detach().clone() for k, v in net.state_dict().items()} for net in self.nets]
        try:
            for net, state in zip(self.nets, self.states):
                net.load_state_dict(state)
            out = split_scores("test", ctx.eval_logits(self.nets, ctx.test), ctx.test.labels)
            for name, split in ctx.extra_test.items():
                out.update(split_scores(name, ctx.eval_logits(self.nets, split), split.labels))
        finally:
            for net, state in zip(self.nets, last):
                net.load_state_dict(state)
        return {"rule": "best_val", "epochs": self.epoch, "val_acc": self.acc, **out}


def distributed_methods() -> list[str]:
    """Names of the methods that run under torchrun."""
    from .methods import METHODS

    return sorted(name for name, cls in METHODS.items() if cls.distributed)


def evaluate_method(method, ctx: RunContext) -> dict:
    """Test accuracy of the ensemble (summed logits) and, for several nets, of each net.

    A method with its own notion of test accuracy (e.g. k-NN accuracy of a self-supervised encoder) defines
    ``evaluate() -> dict`` holding at least ``test_acc``; it is used instead. A method that only adds monitors
    (TCL's k-NN accuracy of the projections) defines ``evaluate_extra() -> dict``, merged into the row; with a
    ``test_forward(net, x) -> (logits, *more)`` the test pass computes both and ``evaluate_extra(more_per_net)``
    gets the rest, so the test set is passed once.
    """
    custom = getattr(method, "evaluate", None)
    if custom is not None:
        return custom()
    nets = method.eval_nets()
    forward = getattr(method, "test_forward", None)  # logits and more in one pass (TCL's projections)
    if forward is None:
        logits, rest = ctx.eval_logits(nets, ctx.test), None
    else:
        outs = ctx.eval_pass(nets, ctx.test, forward=forward)
        logits, rest = [o[0] for o in outs], [o[1:] for o in outs]
    out = split_scores("test", logits, ctx.test.labels)
    if ctx.holdout is not None:  # the clean val split (the source's, or dataset.clean_holdout): model selection
        out.update(split_scores("val", ctx.eval_logits(nets, ctx.holdout), ctx.holdout.labels))
    for name, split in ctx.extra_test.items():
        out.update(split_scores(name, ctx.eval_logits(nets, split), split.labels))
    extra = getattr(method, "evaluate_extra", None)
    if extra is not None:
        out.update(extra() if forward is None else extra(rest))
    return out


#: top-5 accuracy is reported for problems with more classes than this (CIFAR-100, Tiny-ImageNet, WebVision)
TOP5_MIN_CLASSES = 10


def split_scores(name: str, logits: list[torch.Tensor], labels: torch.Tensor) -> dict:
    """``{name}_acc`` of the ensemble (summed logits), ``{name}_acc_net{i}`` of each of several nets, and
    ``{name}_top5`` (ensemble) when there are more than :data:`TOP5_MIN_CLASSES` classes."""
    total = sum(logits)
    out = {f"{name}_acc": accuracy(total.argmax(1), labels)}
    if len(logits) > 1:
        for i, lg in enumerate(logits, 1):
            out[f"{name}_acc_net{i}"] = accuracy(lg.argmax(1), labels)
    if total.shape[1] > TOP5_MIN_CLASSES:
        out[f"{name}_top5"] = topk_accuracy(total, labels, 5)
    return out


def build_summary(cfg, data, device, metrics, wall_time, train_time, images) -> dict:
    """The ``summary.json`` contract, plus a few extras (mean of the last 10 epochs, actual noise rate)."""
    accs = [m["test_acc"] for m in metrics if m.get("test_acc") is not None]
    last = metrics[-1] if metrics else {}
    summary = {
        "method": cfg.method.name,
        "dataset": cfg.dataset.name,
        "noise": {"kind": cfg.noise.kind, "rate": cfg.noise.rate, "actual_rate": data.actual_noise_rate},
        "epochs": len(metrics),
        "test_acc_last": accs[-1] if accs else None,
        "test_acc_best": max(accs) if accs else None,
        "test_acc_last10_mean": float(np.mean(accs[-10:])) if accs else None,
        "wall_time_s": wall_time,
        "train_time_s": train_time,
        "images_per_s": images / train_time if train_time > 0 else None,
        "device": str(device) if device.type != "cuda" else f"cuda:{torch.cuda.get_device_name(device)}",
        "seed": cfg.train.seed,
        "version": __version__,
        "torch": torch.__version__,
        "num_train": len(data.train),
        "num_test": len(data.test),
        "num_classes": data.train.num_classes,
    }
    for key in ("label_precision", "label_recall", "clean_auc", "labeled_size"):
        if key in last:
            summary[key] = last[key]
    vals = [(m["val_acc"], m.get("test_acc")) for m in metrics if m.get("val_acc") is not None]
    if vals:  # Ghosh & Lan's best_acc_with_valid: test accuracy at the first epoch with the best clean val accuracy
        best = max(range(len(vals)), key=lambda i: vals[i][0])
        summary["val_acc_best"] = vals[best][0]
        summary["test_acc_at_best_val"] = vals[best][1]
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}


def write_labels_csv(path: Path, train: DeviceData, report: dict) -> None:
    """``labels.csv``: index, given_label, clean_prob, predicted_label (+ true_label when known), then the optional
    prediction columns a method reports (``predicted_confidence``, ``given_prob``: ``methods.base.prediction_report``)."""
    given = train.labels.cpu().numpy()
    true = None if train.true_labels is None else train.true_labels.cpu().numpy()
    prob = np.asarray(report["clean_prob"], dtype=np.float64)
    pred = np.asarray(report["predicted_label"])
    extra = [k for k in ("predicted_confidence", "given_prob") if report.get(k) is not None]
    extra_values = [np.asarray(report[k], dtype=np.float64) for k in extra]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["index", "given_label", "clean_prob", "predicted_label"] + (["true_label"] if true is not None else [])
                    + extra)
    for i in range(len(given)):
        row = [i, int(given[i]), f"{prob[i]:.6f}", int(pred[i])]
        if true is not None:
            row.append(int(true[i]))
        row += [f"{v[i]:.6f}" for v in extra_values]
        writer.writerow(row)
    atomic_write_text(path, buf.getvalue())


# ------------------------------------------------------------------------------------------------------ evaluate


def evaluate_run(out_dir: str | Path, *, device: str | None = None) -> dict:
    """Re-load a run's config and checkpoint and measure test accuracy; writes ``eval.json``."""
    out_dir = Path(out_dir)
    if not (out_dir / CONFIG).is_file():
        raise UserError(f"{out_dir} has no {CONFIG}; pass the --out folder of a run")
    cfg = load_saved_config(out_dir / CONFIG)
    if device:
        cfg.train.device = device
    payload = load_checkpoint(out_dir / CHECKPOINT)
    dev = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    data = prepare_data(cfg)
    ctx = build_context(cfg, data, dev)
    method = get_method(cfg.method.name)(cfg, ctx)
    load_method_state(method, payload, out_dir / CHECKPOINT)
    result = {"epoch": int(payload["epoch"]), **evaluate_method(method, ctx), "num_test": len(data.test)}
    try:
        atomic_write_json(out_dir / "eval.json", result)
    except OSError as exc:
        raise write_error(exc, out_dir / "eval.json", out_dir, resumable=True) from None
    return result
