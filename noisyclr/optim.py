"""Optimisers and parameter groups: LARS (SimCLR) and the no-weight-decay split for normalisation layers.

Two rules from the seed systems, built in one place (:func:`decay_groups`):

* Ghosh & Lan fine-tuning: no weight decay on batch-norm parameters (``train.no_decay_bn``). The reference
  matches parameter *names* containing ``"bn"``, which misses torchvision's ``downsample.1`` BN; here
  normalisation layers are found by module type, so every BN (also in shortcuts and projectors) is excluded.
* SimCLR with LARS (simclr-pytorch ``configure_optimizers``): norm-layer parameters **and biases** get neither
  weight decay nor the layer-wise trust ratio. Parameters are split by shape there: every 1-D parameter is a bias
  or a norm scale/shift, matching the reference's ``'bn' in name or 'bias' in name`` on its networks.

:class:`LARS` is a ``torch.optim.Optimizer`` (so the engine's per-step ``set_lr``, ``state_dict`` and exact resume
work unchanged) that computes exactly what simclr-pytorch's LARC-style wrapper around SGD computes.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

__all__ = ["LARS", "NORM_LAYERS", "decay_groups", "norm_parameter_ids", "trust_ratio"]

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def norm_parameter_ids(module: nn.Module) -> set[int]:
    """``id()`` of every parameter that belongs to a normalisation layer (BatchNorm*, GroupNorm, LayerNorm...)."""
    ids: set[int] = set()
    for m in module.modules():
        if isinstance(m, NORM_LAYERS):
            ids.update(id(p) for p in m.parameters(recurse=False))
    return ids


def decay_groups(
    params: Iterable[nn.Parameter],
    *,
    weight_decay: float,
    no_decay_ids: set[int] | frozenset = frozenset(),
    exclude_1d: bool = False,
) -> list[dict]:
    """Split ``params`` into a decayed group and an excluded group (``weight_decay 0``, ``lars_adapt False``).

    Args:
        params: the parameters, in a stable order (the optimiser state is saved by position).
        weight_decay: decay of the first group.
        no_decay_ids: ``id()`` of parameters to exclude (e.g. :func:`norm_parameter_ids`).
        exclude_1d: also exclude every parameter with ``ndim <= 1`` (biases and norm affines; the LARS rule).

    Returns:
        One or two param-group dicts (an empty group is left out). The order of parameters inside each group is the
        input order, so rebuilding the groups on resume reproduces the checkpointed optimiser layout.
    """
    decay, keep = [], []
    for p in params:
        excluded = id(p) in no_decay_ids or (exclude_1d and p.ndim <= 1)
        (keep if excluded else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "lars_adapt": True})
    if keep:
        groups.append({"params": keep, "weight_decay": 0.0, "lars_adapt": False})
    return groups


def trust_ratio(param: torch.Tensor, update: torch.Tensor, trust_coefficient: float) -> torch.Tensor:
    """LARS layer-wise ratio ``η ‖w‖ / ‖d‖`` (a 0-d tensor), or 1 where ``‖w‖ = 0`` or ``‖d‖ = 0``.

    ``d`` is the gradient with the weight decay already added (``g + λ w``), as in SimCLR / simclr-pytorch. Computed
    with ``torch.where`` so that no value is read on the host (no device sync per parameter).
    """
    w_norm = torch.linalg.vector_norm(param)
    d_norm = torch.linalg.vector_norm(update)
    ok = (w_norm > 0) & (d_norm > 0)
    return torch.where(ok, trust_coefficient * w_norm / torch.where(ok, d_norm, 1.0), 1.0)


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al. 2017) with SGD momentum, as SimCLR trains.

    Per parameter ``w`` with gradient ``g``, in a group with learning rate ``lr``, momentum ``μ``, weight decay
    ``λ`` and ``lars_adapt`` on::

        d = g + λ w
        d ← η ‖w‖ / ‖d‖ · d        (only if lars_adapt and both norms are > 0)
        b ← μ b + d                 (b = d at the first step, as torch SGD)
        w ← w − lr · (d + μ b  if nesterov else  b)

    which is what simclr-pytorch's ``LARS(SGD(param_groups, momentum=0.9))`` wrapper computes (it scales the
    gradient in place, then lets SGD with ``weight_decay`` 0 take the step). Groups built by :func:`decay_groups`
    carry ``lars_adapt``; a group without the key is adapted.

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (set per step by the engine's schedule).
        momentum: μ.
        weight_decay: λ (per group).
        trust_coefficient: η (0.001 in SimCLR).
        nesterov: Nesterov momentum.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, nesterov: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError("LARS needs lr, momentum, weight_decay >= 0 and trust_coefficient > 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        nesterov=nesterov, lars_adapt=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=wd) if wd != 0 else p.grad.clone()
                if group["lars_adapt"]:
                    d.mul_(trust_ratio(p, d, group["trust_coefficient"]))
                if mu != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.clone()
                    else:
                        buf.mul_(mu).add_(d)
                    d = d.add(buf, alpha=mu) if group["nesterov"] else buf
                p.add_(d, alpha=-lr)
        return loss
