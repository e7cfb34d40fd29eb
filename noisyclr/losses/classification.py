"""Per-sample classification losses on (noisy) hard labels, and the entropy penalty.

All functions take ``logits`` of shape ``(B, C)`` and return a ``(B,)`` tensor of per-sample losses unless
``reduction="mean"``; the per-sample form is what the memorisation curve and the GMM division need.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise ValueError(f"reduction must be none|mean|sum, got {reduction!r}")


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Cross-entropy ``-log softmax(z)_y`` per sample. ``logits`` (B, C), ``labels`` (B,) int64."""
    return F.cross_entropy(logits.float(), labels, reduction=reduction)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Cross-entropy against a target distribution: ``-Σ_c t_c log softmax(z)_c``. ``targets`` (B, C) rows sum to 1."""
    return _reduce(-(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1), reduction)


def generalized_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, q: float = 0.7, reduction: str = "none"
) -> torch.Tensor:
    """Non-truncated generalised cross-entropy L_q (Zhang & Sabuncu 2018): ``(1 - p_y^q) / q``.

    ``q → 0`` recovers CE, ``q = 1`` is MAE up to a factor 2. ``q`` must be in (0, 1].
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"GCE q must be in (0, 1], got {q}")
    p_y = F.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    # clamp keeps the gradient finite where p_y underflows to 0 (p^(q-1) blows up)
    return _reduce((1.0 - p_y.clamp_min(1e-12) ** q) / q, reduction)


def mean_absolute_error(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """MAE between the one-hot label and the softmax: ``‖e_y − p‖₁ = 2 (1 − p_y)``."""
    p_y = F.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    return _reduce(2.0 * (1.0 - p_y), reduction)


def negative_entropy(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Batch mean (``reduction="mean"``) or per-sample values of the negative entropy ``Σ_c p_c log p_c`` (≤ 0).

    Adding it to a loss *maximises* prediction entropy: DivideMix's confidence penalty during warm-up under
    asymmetric noise, which keeps the network from becoming over-confident on the flipped labels.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    return _reduce((log_p.exp() * log_p).sum(dim=1), reduction)


# log of RCE's clamp of the one-hot label: Symmetric CE's A = log 1e-4 (Wang et al. 2019; Manifold DivideMix)
RCE_LABEL_FLOOR = 1e-4


def symmetric_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0,
                            reduction: str = "none") -> torch.Tensor:
    """Symmetric CE (Wang et al. 2019) per sample: ``α CE + β RCE`` with the reverse CE of the one-hot label
    clamped to [1e-4, 1]: ``RCE = −Σ_c p_c log clamp(e_y, 1e-4, 1)_c = −log(1e-4) (1 − p_y) ≈ 9.21 (1 − p_y)``.

    Manifold DivideMix's warm-up loss (α = β = 1, docs/methods/manifold_dividemix.md, "Warm-up").
    ``logits`` (B, C), ``labels`` (B,) int64.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    p_y = log_p.exp().gather(1, labels[:, None]).squeeze(1)
    rce = -math.log(RCE_LABEL_FLOOR) * (1.0 - p_y)
    return _reduce(alpha * F.nll_loss(log_p, labels, reduction="none") + beta * rce, reduction)


def soft_symmetric_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, target_log: str = "log_softmax",
                                 reduction: str = "none") -> torch.Tensor:
    """Symmetric CE against soft targets, Manifold DivideMix's labeled loss (``--LN-loss RL``) per sample::

        ce  = −Σ_c t_c log softmax(z)_c
        rce = −Σ_c clamp(p_c, 1e-7, 1) · L_c,   L = log_softmax(clamp(t, 1e-7, 1))   (target_log="log_softmax")
                                                 L = log clamp(t, 1e-4, 1)             (target_log="log_clamp")

    The reference applies a log-softmax to the target vector, as if it were logits ("log_softmax", the published
    behaviour; docs/methods/manifold_dividemix.md, "The seed's quirks"); "log_clamp" is the reverse CE as written.
    ``logits``, ``targets`` (B, C) → (B,).
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    t = targets.float()
    ce = -(t * log_p).sum(dim=1)
    if target_log == "log_softmax":
        log_t = F.log_softmax(t.clamp(1e-7, 1.0), dim=1)
    elif target_log == "log_clamp":
        log_t = torch.log(t.clamp(RCE_LABEL_FLOOR, 1.0))
    else:
        raise ValueError(f"target_log must be log_softmax or log_clamp, got {target_log!r}")
    rce = -(log_p.exp().clamp(1e-7, 1.0) * log_t).sum(dim=1)
    return _reduce(ce + rce, reduction)


def entropy(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Prediction entropy ``H(p) = −Σ_c p_c log p_c`` per sample (``reduction="none"``) or its batch mean.

    Minimising it sharpens individual predictions (TCL's ``L_ent``, docs/methods/tcl.md, "Training step").
    """
    return -negative_entropy(logits, reduction)


def marginal_negative_entropy(logits: torch.Tensor, *, combine=None, rows: int | None = None) -> torch.Tensor:
    """``Σ_c q̄_c log q̄_c`` = −H(q̄), q̄ the mean softmax over the batch: TCL's ``L_ne``, which keeps the class
    marginal balanced when minimised (docs/methods/tcl.md, "Training step").

    ``logits`` ``(M, C)`` → scalar in ``[−log C, 0]``, ``−log C`` iff q̄ is uniform. Under torchrun q̄ is the mean
    over the global batch: ``combine`` sums the per-class sums of every rank with gradients
    (:meth:`noisyclr.distributed.Distributed.all_sum_with_grad`) and ``rows`` is the global M.
    """
    total = F.softmax(logits.float(), dim=1).sum(dim=0)
    m = logits.shape[0]
    if combine is not None:
        total, m = combine(total), rows
    q = total / m
    return (q * torch.log(q.clamp_min(1e-30))).sum()


CLASSIFICATION_LOSSES = ("ce", "gce", "mae")


def classification_loss(
    name: str, logits: torch.Tensor, labels: torch.Tensor, *, q: float = 0.7, reduction: str = "none"
) -> torch.Tensor:
    """Dispatch to ``ce`` | ``gce`` (with ``q``) | ``mae``."""
    if name == "ce":
        return cross_entropy(logits, labels, reduction)
    if name == "gce":
        return generalized_cross_entropy(logits, labels, q, reduction)
    if name == "mae":
        return mean_absolute_error(logits, labels, reduction)
    raise ValueError(f"unknown loss {name!r}; choose one of {CLASSIFICATION_LOSSES}")
