"""The method interface: what the engine calls, and what every method shares.

A method owns its networks, optimisers and per-run state (GMM history, prototypes, thresholds...). The engine
owns everything else: data, epochs, evaluation, checkpoints and logs. Per epoch the engine calls
:meth:`Method.train_epoch`; a method composes its warm-up, selection and training steps inside it from the pure
functions in ``noisyclr.losses`` and ``noisyclr.selection``. A step is a function from a :class:`noisyclr.loop.Step`
(a batch, or a labeled and an unlabeled batch) to a loss; :func:`noisyclr.loop.run_epoch` walks a plan of batches
with it (batching, the generator, progress, the optimiser step and the accounting live there, never in a method).
Views are declared by name (``{"weak": "weak"}``) and read from a batch by name (``batch["weak"]``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn

from ..context import RunContext
from ..method_configs import MethodConfig
from ..selection import balanced_subset


def prediction_report(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """labels.csv's prediction columns from ``(N, C)`` logits and the ``(N,)`` given labels: ``predicted_label``
    (argmax), ``predicted_confidence`` (its softmax probability) and ``given_prob`` (the softmax probability of the
    given label), as NumPy arrays."""
    probs = torch.softmax(logits.float(), dim=1)
    conf, pred = probs.max(dim=1)
    given = probs.gather(1, labels.view(-1, 1).to(probs.device)).squeeze(1)
    return {"predicted_label": pred.cpu().numpy(), "predicted_confidence": conf.cpu().numpy(),
            "given_prob": given.cpu().numpy()}


class Method:
    """Base class. Subclasses set ``Config``, build ``self.nets`` / ``self.optimizers`` and implement ``train_epoch``."""

    Config: ClassVar[type[MethodConfig]] = MethodConfig
    distributed: ClassVar[bool] = False  # whether it runs under torchrun (its batch-coupled steps are made global)

    def __init__(self, cfg, ctx: RunContext):
        self.cfg = cfg
        self.mcfg = cfg.method
        self.ctx = ctx
        self.nets: list[nn.Module] = []
        self.optimizers: list[torch.optim.Optimizer] = []

    # ---------------------------------------------------------------------------------------------- training
    def train_epoch(self, epoch: int) -> dict:
        """Train one epoch (0-based ``epoch``). Returns metrics, at least ``train_loss`` and ``images``
        (training images processed, for images/s)."""
        raise NotImplementedError

    def epoch_sample(self, size: int | None) -> torch.Tensor | None:
        """Rows of a fresh class-balanced sample of ``size`` rows by given label, drawn from the run's generator
        (the Clothing1M recipes' epoch: :func:`noisyclr.selection.balanced_subset`), or ``None`` (all rows) when
        ``size`` is unset."""
        if not size:
            return None
        return balanced_subset(self.ctx.train.labels, size, self.ctx.generator, num_classes=self.ctx.num_classes)

    def eval_nets(self) -> list[nn.Module]:
        """The networks whose summed logits are the prediction (one, or two for an ensemble)."""
        return self.nets

    # ---------------------------------------------------------------------------------------------- outputs
    def sample_report(self) -> dict[str, np.ndarray] | None:
        """Per training sample ``clean_prob`` and ``predicted_label`` for labels.csv, and optionally
        ``predicted_confidence`` and ``given_prob`` (see :func:`prediction_report`)."""
        return None

    # ---------------------------------------------------------------------------------------------- state
    def extra_state(self) -> dict:
        """Method state beyond networks and optimisers (tensors, numbers, lists); checkpointed every epoch."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned."""

    def state_dict(self) -> dict:
        return {
            "nets": [net.state_dict() for net in self.nets],
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["nets"]) != len(self.nets):
            raise ValueError(f"checkpoint has {len(state['nets'])} networks, method has {len(self.nets)}")
        for net, sd in zip(self.nets, state["nets"]):
            net.load_state_dict(sd)
        for opt, sd in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(sd)
            self.ctx.restore_optimizer(opt)
        self.load_extra_state(state.get("extra", {}))
