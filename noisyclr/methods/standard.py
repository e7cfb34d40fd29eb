"""Method ``standard``: one network trained on the given labels with CE, GCE or MAE.

The baseline every paper compares against, and the place to watch memorisation: each epoch, when the true labels
are known, the per-sample training loss (eval pass, test view) is scored for how well it separates clean from
wrong labels (``clean_auc``). Under noise that AUC rises while the network learns the easy clean samples first,
then falls as it memorises the wrong labels. That is why labels.csv's clean probability is not the last epoch's
loss but the mean of every epoch's min-max normalised loss (``loss_history``), through the 1-D GMM: a wrong label
is learnt late, so its loss stays high through most epochs even when the final network has memorised it
(docs/detect.md, "The score").
"""

from __future__ import annotations

import torch

from ..loop import OnePass, run_epoch
from ..losses import classification_loss, negative_entropy
from ..metrics import clean_auc
from .base import Method, prediction_report
from ..selection import clean_probability_1d, minmax_normalize
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
        self.loss_sum: torch.Tensor | None = None  # Σ over epochs of the normalised per-sample loss (checkpointed)
        self.loss_epochs = 0

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
        # Ghosh & Lan's Clothing1M pass: a fresh class-balanced sample (method.epoch_subset), all rows otherwise
        plan = OnePass(ctx.train, self.cfg.train.batch_size, self.views, subset=self.epoch_sample(self.mcfg.epoch_subset))
        r = run_epoch(ctx, plan, self.step, self.optimizers[0], epoch=epoch, desc=f"epoch {epoch + 1}",
                      lr_per_step=True)
        out = {"train_loss": r["loss"], "images": r["images"], "lr": r["lr"]}
        m = self.mcfg
        watch = m.track_memorisation and ctx.train.is_clean is not None
        if watch or m.loss_history:
            losses = self.train_losses()[1]
            if m.loss_history:
                norm = minmax_normalize(losses.double())
                self.loss_sum = norm if self.loss_sum is None else self.loss_sum + norm
                self.loss_epochs += 1
            if watch:
                out["clean_auc"] = clean_auc(-losses, ctx.train.is_clean)
        return out

    def train_losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, per-sample loss)`` of the training set (eval pass, test view)."""
        (logits,) = self.ctx.eval_logits(self.nets, self.ctx.train)
        return logits, classification_loss(self.mcfg.loss, logits, self.ctx.train.labels, q=self.mcfg.q)

    def sample_report(self) -> dict:
        """The small-loss criterion: a 2-component GMM on the mean normalised per-sample loss over the epochs
        (the final epoch's loss without ``loss_history``), and the final network's prediction (docs/detect.md)."""
        logits, losses = self.train_losses()
        points = self.loss_sum / self.loss_epochs if self.loss_epochs else losses
        prob, _ = clean_probability_1d(points)
        return {"clean_prob": prob.cpu().numpy(), **prediction_report(logits, self.ctx.train.labels)}

    def extra_state(self) -> dict:
        return {} if self.loss_sum is None else {"loss_sum": self.loss_sum, "loss_epochs": self.loss_epochs}

    def load_extra_state(self, state: dict) -> None:
        if "loss_sum" in state:
            self.loss_sum = state["loss_sum"].to(self.ctx.device)
            self.loss_epochs = int(state["loss_epochs"])
