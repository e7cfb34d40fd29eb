"""Method ``standard``: one network trained on the given labels with CE, GCE or MAE.

The baseline every paper compares against, and the place to watch memorisation: each epoch, when the true labels
are known, the per-sample training loss (eval pass, test view) is scored for how well it separates clean from
wrong labels (``clean_auc``). Under noise that AUC rises while the network learns the easy clean samples first,
then falls as it memorises the wrong labels.
"""

from __future__ import annotations

import torch

from ..loop import OnePass, run_epoch
from ..losses import classification_loss, negative_entropy
from ..metrics import clean_auc
from .base import Method
from ..method_configs import StandardConfig


class Standard(Method):
    Config = StandardConfig
    distributed = True

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        net = ctx.build_network()
        self.nets = [net]
        self.optimizers = [ctx.sgd(net.parameters())]
        self.forward = ctx.compiled(net)
        self.views = ctx.views({"weak": "weak"})

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """Mean of the configured per-sample loss, plus ``neg_entropy ·`` the negative-entropy penalty.

        ``rows``: size of the global batch under torchrun (this rank's share of the mean, see
        :meth:`noisyclr.distributed.Distributed.batch_mean`); default: ``len(labels)``.
        """
        m, mean = self.mcfg, self.ctx.dist.batch_mean
        rows = len(labels) if rows is None else rows
        loss = mean(classification_loss(m.loss, logits, labels, q=m.q), rows)
        if m.neg_entropy:
            loss = loss + m.neg_entropy * mean(negative_entropy(logits, reduction="none"), rows)
        return loss

    def step(self, s) -> torch.Tensor:
        """The configured loss of the weak view's logits against the given labels."""
        with self.ctx.autocast():
            logits = self.forward(s.batch["weak"])
        return self.loss(logits, s.batch.labels, s.batch.size)

    def train_epoch(self, epoch: int) -> dict:
        ctx = self.ctx
        self.nets[0].train()
        plan = OnePass(ctx.train, self.cfg.train.batch_size, self.views)
        r = run_epoch(ctx, plan, self.step, self.optimizers[0], epoch=epoch, desc=f"epoch {epoch + 1}",
                      lr_per_step=True)
        out = {"train_loss": r["loss"], "images": r["images"], "lr": r["lr"]}
        if self.mcfg.track_memorisation and ctx.train.is_clean is not None:
            out["clean_auc"] = self.memorisation_auc()
        return out

    def memorisation_auc(self) -> float:
        """AUC of ``-loss`` (eval pass, test view) for separating clean from wrong training labels."""
        (logits,) = self.ctx.eval_logits(self.nets, self.ctx.train)
        losses = classification_loss(self.mcfg.loss, logits, self.ctx.train.labels, q=self.mcfg.q)
        return clean_auc(-losses, self.ctx.train.is_clean)
