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
      T, so the rate stays at η_min after T (torch's ``CosineAnnealingLR`` is periodic and rises again).
    A linear warm-up over ``lr_warmup_epochs`` (fractional, per step) multiplies the result by ``t / warmup``.
    """
    t = epoch + (step / max(steps_per_epoch, 1))
    if cfg.schedule == "constant":
        lr = cfg.lr
    elif cfg.schedule == "step":
        lr = cfg.lr * cfg.gamma ** (epoch // cfg.step_size)
    elif cfg.schedule == "multistep":
        lr = cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    elif cfg.schedule == "cosine":
        period = cfg.cosine_tmax or cfg.epochs
        pos = min(t if cfg.cosine_per_step else epoch, period)
        lr = cfg.eta_min + (cfg.lr - cfg.eta_min) * 0.5 * (1.0 + math.cos(math.pi * pos / period))
    else:  # validated in config; kept for direct callers
        raise ValueError(f"unknown schedule {cfg.schedule!r}")
    if cfg.lr_warmup_epochs > 0 and t < cfg.lr_warmup_epochs:
        lr *= (t + 1.0 / max(steps_per_epoch, 1)) / cfg.lr_warmup_epochs
    return lr


def set_lr(optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group (groups may carry an ``lr_scale`` factor)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
