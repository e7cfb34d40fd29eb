"""Learning-rate schedules of the seed systems, as pure functions of training progress.

A schedule is a function of (epoch, step within epoch, steps per epoch), not an object with hidden state, so a
resumed run lands on exactly the same learning rate with nothing to checkpoint beyond the epoch.
"""

from __future__ import annotations

import math

from .config import TrainConfig


def learning_rate(cfg: TrainConfig, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
    """Learning rate at ``epoch`` (0-based) and ``step`` within it.

    * ``constant``: ``lr``.
    * ``step``: ``lr · gamma^⌊epoch / step_size⌋``.
    * ``multistep``: ``lr · gamma^{#milestones ≤ epoch}`` (DivideMix: milestones [150], gamma 0.1).
    * ``cosine``: ``η_min + (lr − η_min) · (1 + cos(π t / T)) / 2`` with ``t`` the epoch (or fractional epoch if
      ``cosine_per_step``), ``T = cosine_tmax or epochs`` and ``η_min = eta_min`` (0 by default); t is clamped to
      T, so the rate stays at η_min after T (torch's ``CosineAnnealingLR`` is periodic and rises again). With
      ``cosine_after_warmup`` the position is ``t − lr_warmup_epochs`` (0 during the warm-up) and the period
      stays T: TCL's ``η_min + ½(lr − η_min)(1 + cos(π (e − 20)/200))``, which ends above η_min.
    A linear warm-up over ``lr_warmup_epochs`` (fractional, per step) multiplies the result by ``t / warmup``
    (``t`` counted after the step, so the first step is not at 0: TCL's ``n_iter`` starts at 1).

    ``lr_reference_batch`` = b: ``lr`` and ``eta_min`` are given for a batch of b and scaled by
    ``batch_size / b`` (the linear scaling rule; TCL: 0.03 at 256 → 0.12 at 1024).
    """
    t = epoch + (step / max(steps_per_epoch, 1))
    scale = cfg.batch_size / cfg.lr_reference_batch if cfg.lr_reference_batch else 1.0
    base, floor = cfg.lr * scale, cfg.eta_min * scale
    if cfg.schedule == "constant":
        lr = base
    elif cfg.schedule == "step":
        lr = base * cfg.gamma ** (epoch // cfg.step_size)
    elif cfg.schedule == "multistep":
        lr = base * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    elif cfg.schedule == "cosine":
        period = cfg.cosine_tmax or cfg.epochs
        pos = t if cfg.cosine_per_step else epoch
        if cfg.cosine_after_warmup:
            pos = max(pos - cfg.lr_warmup_epochs, 0.0)
        pos = min(pos, period)
        lr = floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * pos / period))
    else:  # validated in config; kept for direct callers
        raise ValueError(f"unknown schedule {cfg.schedule!r}")
    if cfg.lr_warmup_epochs > 0 and t < cfg.lr_warmup_epochs:
        lr *= (t + 1.0 / max(steps_per_epoch, 1)) / cfg.lr_warmup_epochs
    return lr


def set_lr(optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group (groups may carry an ``lr_scale`` factor)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
