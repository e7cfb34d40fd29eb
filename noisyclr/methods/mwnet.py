"""Method ``mwnet``: Meta-Weight-Net (Shu et al. 2019) as Ghosh & Lan fine-tune with it (docs/methods/simclr_finetune.md,
"4. Meta-Weight-Net").

A weighting network ``V: loss ↦ weight`` (``1 → 100 → ReLU → 1 → sigmoid``) is learned on clean meta data
(``dataset.clean_holdout``) so that training on the *weighted* noisy loss generalises to the clean data. Per step,
with a noisy batch (x, ỹ), a clean meta batch (x_m, y_m) of the same size and the classifier's parameters θ::

    l_i = ℓ(f_θ(x_i), ỹ_i),  v_i = V(l_i.detach())
    θ'(V) = θ − α ∇_θ (1/B) Σ_i v_i l_i                       virtual SGD step, α = inner_lr = 0.1 (constant)
    L_meta(V) = ℓ_meta(f_θ'(x_m), y_m)                         CE (or MAE) on the clean meta batch
    V ← meta-optimiser step on ∇_V L_meta                      SGD 1e-3, momentum 0.9, Nesterov, wd 1e-4
    l_i = ℓ(f_θ(x_i), ỹ_i),  v_i = V(l_i) (no grad)
    θ ← classifier-optimiser step on (1/B) Σ_i v_i l_i         the run's schedule (1% warm-up + cosine per step)

The virtual step is a functional call of the real network (:func:`torch.func.functional_call`) with parameters
``θ − α g`` where ``g`` is taken with ``create_graph=True``, so ``∇_V L_meta`` back-propagates through the
virtual step (second order, through the whole network) without copying the model and without ``higher``.
Batch-norm layers run in training mode in the virtual and meta forwards, as in the reference, but on **copies** of
the running statistics: only the real step updates them (the official MW-Net uses a separate meta model, so its
running statistics are not touched by the virtual step either).

Switches (defaults = Ghosh & Lan): ``normalize_weights`` (official MW-Net divides by Σ v_i instead of B),
``inner_lr=null`` (official: the classifier's current learning rate), ``meta_loss=mae`` (``2(1 − p_y)``, the GL
option without a CLI flag), ``loss`` = ce | gce | mae for the weighted training loss (GL: ce only).

Logged per epoch: ``train_loss`` (weighted), ``meta_loss``, ``weight_mean`` and, when the true labels are known, the
mean weight of clean and of wrongly labelled samples and ``clean_auc`` of the last weight each sample received.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.func import functional_call

from ..errors import UserError
from ..loop import OnePass, StepResult, run_epoch
from ..losses import classification_loss
from ..metrics import clean_auc
from .base import Method
from ..method_configs import MWNetConfig

__all__ = ["MWNet", "MWNetConfig", "VNet", "meta_gradient", "virtual_meta_loss", "weighted_loss"]


class VNet(nn.Module):
    """The weighting network ``(B,) losses → (B,) weights in (0, 1)``:
    ``Linear(1, h) → ReLU → Linear(h, 1) → sigmoid``."""

    def __init__(self, hidden: int = 100):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        x = losses.reshape(-1, 1).to(self.net[0].weight.dtype)
        return torch.sigmoid(self.net(x)).squeeze(1)


def weighted_loss(losses: torch.Tensor, weights: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """``Σ v_i l_i / B`` (Ghosh & Lan), or ``Σ v_i l_i / Σ v_i`` with ``normalize`` (official MW-Net; 0 if
    Σ v = 0)."""
    total = (weights * losses).sum()
    if normalize:
        return total / weights.sum().clamp_min(1e-12)
    return total / losses.shape[0]


def virtual_meta_loss(net: nn.Module, vnet: nn.Module, x: torch.Tensor, y: torch.Tensor, x_meta: torch.Tensor,
                      y_meta: torch.Tensor, *, inner_lr: float, loss: str = "ce", q: float = 0.66,
                      meta_loss: str = "ce", normalize: bool = False, buffers: dict | None = None,
                      autocast=None, loss_fn=None, meta_loss_fn=None) -> torch.Tensor:
    """The meta loss ``L_meta(V)`` after one virtual SGD step of ``net`` on the V-weighted noisy loss.

    Differentiable with respect to ``vnet``'s parameters (and nothing of ``net`` is modified): the virtual
    parameters ``θ − α ∇_θ L_w`` are built with ``create_graph=True`` and used through
    :func:`torch.func.functional_call`. ``buffers`` (default: clones of ``net``'s buffers) receive the batch-norm
    running-statistic updates of the two functional forwards, so the real running statistics stay untouched.
    ``autocast`` is an optional context factory for the two forwards (mixed precision). ``loss_fn(logits, labels)``
    / ``meta_loss_fn`` replace the named per-sample losses (``(B,)`` out; the library's losses compute in float32,
    so the float64 finite-difference test passes dtype-preserving ones).
    """
    loss_fn = loss_fn or (lambda logits, labels: classification_loss(loss, logits, labels, q=q))
    meta_loss_fn = meta_loss_fn or (lambda logits, labels: classification_loss(meta_loss, logits, labels))
    import contextlib

    ctx = autocast or contextlib.nullcontext
    named = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    frozen = {k: p for k, p in net.named_parameters() if not p.requires_grad}
    if buffers is None:
        buffers = {k: b.clone() for k, b in net.named_buffers()}
    params = dict(named)
    with ctx():
        logits = functional_call(net, ({**params, **frozen}, buffers), (x,))
    losses = loss_fn(logits, y)
    weights = vnet(losses.detach())
    inner = weighted_loss(losses, weights, normalize)
    grads = torch.autograd.grad(inner, [p for _, p in named], create_graph=True, allow_unused=True)
    virtual = {k: (p if g is None else p - inner_lr * g) for (k, p), g in zip(named, grads)}
    with ctx():
        meta_logits = functional_call(net, ({**virtual, **frozen}, buffers), (x_meta,))
    return meta_loss_fn(meta_logits, y_meta).mean()


def meta_gradient(net: nn.Module, vnet: nn.Module, *args, **kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(L_meta, ∇_V L_meta)`` for :func:`virtual_meta_loss` (same arguments); grads in ``vnet.parameters()``
    order."""
    meta = virtual_meta_loss(net, vnet, *args, **kwargs)
    grads = torch.autograd.grad(meta, list(vnet.parameters()))
    return meta, list(grads)


class MWNet(Method):
    Config = MWNetConfig

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        if ctx.holdout is None:  # e.g. a Method built outside the engine
            raise UserError("method mwnet needs clean meta data: set dataset.clean_holdout=N")
        m = self.mcfg
        net = ctx.build_network()
        vnet = VNet(m.vnet_hidden).to(ctx.device)
        meta_opt = torch.optim.SGD(vnet.parameters(), lr=m.meta_lr, momentum=m.meta_momentum,
                                   nesterov=m.meta_nesterov, weight_decay=m.meta_weight_decay)
        # nets/optimizers[0] are the classifier's; the VNet and its optimiser ride along for checkpoints
        self.nets = [net, vnet]
        self.optimizers = [ctx.optimizer(net), meta_opt]
        self.forward = ctx.compiled(net)
        self.views = ctx.views({"weak": "weak"})
        self.last_weight = torch.full((len(ctx.train),), float("nan"), device=ctx.device)

    def eval_nets(self) -> list[nn.Module]:
        return self.nets[:1]

    def meta_batch(self, size: int):
        """A clean meta batch of ``size`` held-out images (without replacement), weak view, drawn from the run's
        generator (the seed draws a fresh shuffled batch from its meta loader every step)."""
        hold = self.ctx.holdout
        idx = torch.randperm(len(hold), generator=self.ctx.generator, device=self.ctx.device)[: min(size, len(hold))]
        return hold.batch(idx, self.views, self.ctx.generator)

    def step(self, s) -> StepResult:
        """1. the meta step: V learns from a virtual step of the classifier on a clean meta batch; 2. the real
        step's loss: the V-weighted noisy loss with the updated V (weights are constants there)."""
        ctx, m = self.ctx, self.mcfg
        (net, vnet), (opt, meta_opt) = self.nets, self.optimizers
        x, y, n = s.batch["weak"], s.batch.labels, len(s.batch)
        lr = opt.param_groups[0]["lr"]
        meta = self.meta_batch(m.meta_batch_size or n)
        meta_loss, grads = meta_gradient(
            net, vnet, x, y, meta["weak"], meta.labels, inner_lr=m.inner_lr if m.inner_lr is not None else lr,
            loss=m.loss, q=m.q, meta_loss=m.meta_loss, normalize=m.normalize_weights, autocast=ctx.autocast,
        )
        meta_opt.zero_grad(set_to_none=True)
        for p, g in zip(vnet.parameters(), grads):
            p.grad = g
        meta_opt.step()
        with ctx.autocast():
            logits = self.forward(x)
        losses = classification_loss(m.loss, logits, y, q=m.q)
        with torch.no_grad():
            weights = vnet(losses.detach()).float()
        self.last_weight.index_copy_(0, s.batch.indices, weights)
        return StepResult(weighted_loss(losses, weights, m.normalize_weights),
                          {"meta_loss": meta_loss.detach() * n, "weight_mean": weights.sum()})

    def train_epoch(self, epoch: int) -> dict:
        ctx = self.ctx
        for net in self.nets:
            net.train()
        plan = OnePass(ctx.train, self.cfg.train.batch_size, self.views)
        r = run_epoch(ctx, plan, self.step, self.optimizers[0], epoch=epoch, desc=f"epoch {epoch + 1}",
                      lr_per_step=True)
        out = {"train_loss": r["loss"], "meta_loss": r.get("meta_loss", 0.0), "weight_mean": r.get("weight_mean", 0.0),
               "images": r["images"], "lr": r["lr"]}
        clean = ctx.train.is_clean
        seen = ~torch.isnan(self.last_weight)
        if clean is not None and bool(seen.any()):
            w, c = self.last_weight[seen], clean[seen]
            out["weight_clean_mean"] = float(w[c].mean()) if bool(c.any()) else None
            out["weight_noisy_mean"] = float(w[~c].mean()) if bool((~c).any()) else None
            out["clean_auc"] = clean_auc(w, c)
        return out

    def extra_state(self) -> dict:
        return {"last_weight": self.last_weight}

    def load_extra_state(self, state: dict) -> None:
        if "last_weight" in state:
            self.last_weight = state["last_weight"].to(self.ctx.device)
