"""Method ``simclr`` (Chen et al. 2020) and ``noisyclr pretrain``: a label-free encoder for ``model.init``.

The pretraining stage of Ghosh & Lan (docs/methods/simclr_finetune.md, "1. SimCLR pretraining"; simclr-pytorch's
CIFAR recipe): per step a batch of B training images (labels unused), two independent ``contrastive`` views each
(random resized crop 0.08-1, flip, colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, **no** mean/std
normalisation), one backbone pass over the 2B views (batch-norm statistics shared by both views), projection head,
NT-Xent with τ = 0.5 over the 2B anchors (:func:`noisyclr.losses.nt_xent`; every other view in the batch is a
negative). LARS or SGD with the engine's
per-step warm-up + cosine schedule (``train.optimizer``, ``train.schedule=cosine``, ``train.cosine_per_step``).

Projection head: the network's projector ``Linear(d, h) → BN → ReLU → Linear(h, proj_dim)`` followed, with
``final_bn`` (default), by ``BatchNorm1d(proj_dim)`` whose shift is frozen at 0, as simclr-pytorch's
``BatchNorm1dNoBias``. Embeddings are L2-normalised inside the loss.

Per epoch ``test_acc`` is the **weighted k-NN accuracy** of the (L2-normalised) backbone features on the test set
against the training set with its given labels (k = 200, τ = 0.1, Wu et al. 2018; ``knn_acc`` holds the same value).
The labels only serve this monitor; training never reads them.

:func:`noisyclr.pretrain.pretrain` (the ``noisyclr pretrain`` verb) runs the engine on this method and then writes
``encoder.pt`` and ``model_card.json`` (:func:`noisyclr.pretrain.export_encoder`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import UserError
from ..losses import nt_xent
from ..method_configs import SimCLRConfig
from ..loop import OnePass, run_epoch
from ..neighbours import knn_monitor_due, knn_predict
from .base import Method

__all__ = ["Embedder", "SimCLR", "SimCLRConfig"]


class Embedder(nn.Module):
    """``images → projections``: backbone, projector and the optional final BN, as one module (one compile unit)."""

    def __init__(self, net: nn.Module, out_bn: nn.Module | None):
        super().__init__()
        self.net, self.out_bn = net, out_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x, heads=("proj",)).proj
        return z if self.out_bn is None else self.out_bn(z)


class SimCLR(Method):
    distributed = True
    Config = SimCLRConfig

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        m = self.mcfg
        net = ctx.build_network(proj_dim=m.proj_dim, proj_hidden=m.proj_hidden, proj_bn=True)
        self.nets = [net]
        out_bn = None
        if m.final_bn:
            out_bn = ctx.sync_norm(nn.BatchNorm1d(m.proj_dim)).to(ctx.device)
            out_bn.bias.requires_grad_(False)  # simclr-pytorch BatchNorm1dNoBias: the shift stays 0
            self.nets.append(out_bn)
        embedder = Embedder(net, out_bn)
        self.optimizers = [ctx.optimizer(embedder)]
        self.embed = ctx.compiled(embedder)  # images -> raw projections (the loss normalises them)
        self.views = ctx.views({"view1": "contrastive", "view2": "contrastive"}, crop_scale=tuple(m.crop_scale),
                               color_strength=m.color_strength, p_jitter=m.p_jitter, p_gray=m.p_gray)
        if m.drop_last and len(ctx.train) < cfg.train.batch_size:
            raise UserError(
                f"train.batch_size={cfg.train.batch_size} exceeds the {len(ctx.train)} training images and SimCLR "
                "drops the last partial batch; lower train.batch_size or set method.drop_last=false"
            )
        self.epoch = -1

    def eval_nets(self) -> list[nn.Module]:
        return self.nets[:1]

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """NT-Xent over the 2B anchors of the two views' projections ``(B, D)`` each."""
        return nt_xent(torch.stack([z1, z2], dim=1), temperature=self.mcfg.temperature)

    def step(self, s) -> torch.Tensor:
        """NT-Xent of one backbone pass over both views (batch-norm statistics shared by the two views)."""
        batch, ctx = s.batch, self.ctx
        n = len(batch)
        with ctx.autocast():
            z = self.embed(torch.cat([batch["view1"], batch["view2"]]))
        # under torchrun the negatives are every rank's views (gathered with gradients)
        z = ctx.dist.gather_blocks_with_grad(z, [n, n], [batch.size, batch.size])
        return self.loss(z[: batch.size], z[batch.size :])

    def train_epoch(self, epoch: int) -> dict:
        self.epoch = epoch
        for net in self.nets:
            net.train()
        plan = OnePass(self.ctx.train, self.cfg.train.batch_size, self.views, drop_last=self.mcfg.drop_last)
        r = run_epoch(self.ctx, plan, self.step, self.optimizers[0], epoch=epoch, desc=f"epoch {epoch + 1}",
                      lr_per_step=True)
        return {"train_loss": r["loss"], "images": r["images"], "lr": r["lr"]}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """k-NN test accuracy of the backbone features (``unit`` view, no normalisation), every ``knn_every`` epochs."""
        m = self.mcfg
        if not knn_monitor_due(self.epoch, self.cfg.train.epochs, m.knn_k, m.knn_every):
            return {"test_acc": None}
        ctx = self.ctx
        feats = lambda net, x: net(x, heads=("features",)).features  # noqa: E731
        (train_f,) = ctx.eval_pass(self.nets[:1], ctx.train, forward=feats, view="unit")
        (test_f,) = ctx.eval_pass(self.nets[:1], ctx.test, forward=feats, view="unit")
        pred = knn_predict(train_f, ctx.train.labels, test_f, ctx.num_classes, k=m.knn_k, temperature=m.knn_temperature)
        acc = float((pred == ctx.test.labels).float().mean())
        return {"test_acc": acc, "knn_acc": acc}
