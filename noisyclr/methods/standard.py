"""Method ``standard``: one network trained on the given labels with CE, GCE or MAE.

The baseline every paper compares against, and the place to watch memorisation: each epoch, when the true labels
are known, the per-sample training loss (eval pass, test view) is scored for how well it separates clean from
wrong labels (``clean_auc``). Under noise that AUC rises while the network learns the easy clean samples first,
then falls as it memorises the wrong labels.
"""

from __future__ import annotations

import torch

from ..losses import classification_loss, negative_entropy
from ..metrics import clean_auc
from .base import Method
from .configs import StandardConfig


class Standard(Method):
    Config = StandardConfig
    description = "one network on the given labels: CE, GCE (L_q) or MAE, optional entropy penalty"
    distributed = True

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        net = ctx.build_network()
        self.nets = [net]
        self.optimizers = [ctx.sgd(net.parameters())]
        self.forward = ctx.compiled(net)
        self.views = ctx.views(["weak"])

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

    def train_epoch(self, epoch: int) -> dict:
        ctx, net, opt = self.ctx, self.nets[0], self.optimizers[0]
        bs = self.cfg.train.batch_size
        steps = ctx.train.num_batches(bs)
        net.train()
        total = torch.zeros((), device=ctx.device)
        images, rows = 0, 0  # this rank's images; rows of the global batches (the loss average)
        lr = 0.0
        batches = ctx.train.batches(bs, self.views, ctx.generator)
        for step, batch in enumerate(ctx.progress(batches, steps, f"epoch {epoch + 1}")):
            lr = ctx.schedule(opt, epoch, step, steps)
            with ctx.autocast():
                logits = self.forward(batch.views[0])
            loss = self.loss(logits, batch.labels, batch.size)
            ctx.step(loss, opt)
            total += loss.detach() * batch.size  # accumulated on the device: no host sync per step
            rows += batch.size
            images += len(batch)
        out = {"train_loss": float(total) / max(rows, 1), "images": images, "lr": lr}
        if self.mcfg.track_memorisation and ctx.train.is_clean is not None:
            out["clean_auc"] = self.memorisation_auc()
        return out

    def memorisation_auc(self) -> float:
        """AUC of ``-loss`` (eval pass, test view) for separating clean from wrong training labels."""
        (logits,) = self.ctx.eval_logits(self.nets, self.ctx.train)
        losses = classification_loss(self.mcfg.loss, logits, self.ctx.train.labels, q=self.mcfg.q)
        return clean_auc(-losses, self.ctx.train.is_clean)
