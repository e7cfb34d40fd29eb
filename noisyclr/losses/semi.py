"""DivideMix / MixMatch pieces: target refinement, sharpening, MixUp, the semi-supervised losses, the λ_u ramp-up
and the uniform-prior penalty (docs/methods/dividemix.md, "Algorithm" and "Step formulas").

Pure functions of tensors. Every random draw takes an explicit ``torch.Generator`` (never the global RNG) and uses
a fixed number of draws per call, so a run restored with its generator state replays bit-exactly; the original
code draws λ from numpy's unseeded global RNG and is not reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..mixing import draw_mix, sample_beta, sample_gamma
from .classification import soft_cross_entropy

__all__ = [
    "co_guess",
    "co_refine",
    "lambda_u_at",
    "linear_rampup",
    "mixmatch",
    "mixmatch_losses",
    "sample_beta",
    "sample_gamma",
    "sharpen",
    "squared_error",
    "uniform_prior_penalty",
]


# --------------------------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------------------------


def sharpen(p: torch.Tensor, T: float) -> torch.Tensor:
    """Temperature sharpening ``Sharpen(p)_c = p_c^{1/T} / Σ_k p_k^{1/T}``. ``p`` (B, C) probabilities → (B, C).

    Computed as ``softmax(log p / T)``: the same value, but it cannot underflow to 0/0 for a small T
    (``p^{1/T}`` does for every class once ``p_max^{1/T}`` < 1e-38). Zero entries stay zero. DivideMix T = 0.5.
    """
    if T <= 0:
        raise ValueError(f"sharpening temperature must be > 0, got {T}")
    return torch.softmax(torch.log(p) / T, dim=1)


def co_refine(p_views: Sequence[torch.Tensor], one_hot: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """DivideMix co-refinement of labeled targets: ``p = w·y + (1 − w)·p̄`` with ``p̄`` the mean over views.

    Args:
        p_views: list of ``(B, C)`` softmax probabilities of the net being trained on each weak view.
        one_hot: ``(B, C)`` one-hot noisy labels ``y``.
        w: ``(B,)`` clean probabilities (the *peer's* GMM posterior).

    Returns:
        ``(B, C)`` refined targets, **not** sharpened (callers apply :func:`sharpen`).
    """
    p_bar = torch.stack(list(p_views), dim=0).mean(dim=0)
    w = w.to(p_bar.dtype).view(-1, 1)
    return w * one_hot.to(p_bar.dtype) + (1.0 - w) * p_bar


def cross_supervised_targets(pa: torch.Tensor, pb: torch.Tensor, one_hot: torch.Tensor, w: torch.Tensor,
                             scale1: float, scale2: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TCL's corrected targets of the two strong views and of the mixed views (docs/methods/tcl.md, "Training
    step").

    With ``a = w·s₁`` and ``b = w·s₂`` per sample::

        t_a = a·y + (1 − a)·p_b        view a is supervised by view b's prediction (cross-supervision)
        t_b = a·y + (1 − a)·p_a
        t₀  = b·y + (1 − b)·(p_a + p_b)/2

    Args:
        pa, pb: ``(B, C)`` softmax predictions of the two strong views (detached by the caller).
        one_hot: ``(B, C)`` one-hot noisy labels ``y``.
        w: ``(B,)`` clean confidences (the noise model's posterior).
        scale1, scale2: s₁, s₂ (TCL: ρ̂, the estimated clean fraction, unless the config fixes them).

    Returns ``(t_a, t_b, t₀)``, each ``(B, C)`` with rows summing to 1.
    """
    w = w.to(pa.dtype).view(-1, 1)
    y = one_hot.to(pa.dtype)
    a, b = w * scale1, w * scale2
    return a * y + (1 - a) * pb, a * y + (1 - a) * pa, b * y + (1 - b) * (pa + pb) / 2


def co_guess(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """DivideMix co-guessing of unlabeled targets: the mean of ``(B, C)`` probabilities (both nets × both views)."""
    return torch.stack(list(probs), dim=0).mean(dim=0)


# --------------------------------------------------------------------------------------------------------------
# MixMatch
# --------------------------------------------------------------------------------------------------------------


def _as_batch(x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.cat(list(x), dim=0)


def mixmatch(
    inputs: torch.Tensor | Sequence[torch.Tensor],
    targets: torch.Tensor | Sequence[torch.Tensor],
    alpha: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DivideMix's MixUp over the whole MixMatch batch (labeled and unlabeled rows mix with each other).

        λ ~ Beta(α, α),  λ' = max(λ, 1 − λ),  π = randperm(R)
        X̃ = λ' X + (1 − λ') X[π],   Ỹ = λ' Y + (1 − λ') Y[π]

    One λ per call. λ' ≥ ½ keeps each mixed row closer to its own row, so the first 2B rows stay "labeled".

    Args:
        inputs: ``(R, ...)`` tensor or a list concatenated along dim 0 (DivideMix: ``[x¹, x², u¹, u²]``, R = 4B).
        targets: ``(R, C)`` tensor or list (``[t_x, t_x, t_u, t_u]``).
        alpha: Beta parameter α > 0 (CIFAR 4, Clothing1M/WebVision 0.5).
        generator: source of λ (see :func:`sample_beta`) and then of π, in that order; it should live on the
            inputs' device (a CPU generator also works: λ and π are then copied over).

    Returns:
        ``(mixed_inputs (R, ...), mixed_targets (R, C), lam)`` with ``lam`` = λ' a 0-dim float32 tensor on the
        inputs' device (no host sync; call ``float(lam)`` only for logging).
    """
    x = _as_batch(inputs)
    y = _as_batch(targets)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs and targets must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    draw = draw_mix(alpha, x.shape[0], generator, x.device, rule="max")
    return draw.apply(x), draw.apply(y), draw.lam


def mixmatch_losses(
    logits_x: torch.Tensor,
    targets_x: torch.Tensor,
    logits_u: torch.Tensor,
    targets_u: torch.Tensor,
    *,
    batch_mean=None,
    rows: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DivideMix's ``SemiLoss``: ``(L_x, L_u)``.

        L_x = −(1/R_x) Σ_i Σ_c Ỹ_ic log softmax(z_i)_c                    (soft CE over the labeled rows)
        L_u = (1/(R_u·C)) Σ_i Σ_c (softmax(z_i)_c − Ỹ_ic)²                 (MSE over rows **and** classes)

    The papers write L_u with a squared L2 norm (a sum over classes); the code takes the mean over classes too, and
    the published λ_u values are calibrated to that ``/C`` convention, which we keep.

    Args:
        logits_x: ``(R_x, C)``; targets_x: ``(R_x, C)`` mixed soft targets.
        logits_u: ``(R_u, C)``; targets_u: ``(R_u, C)``.
        batch_mean, rows: under torchrun, ``batch_mean(values, global_rows)`` (a rank's share of a mean over the
            global batch, :meth:`noisyclr.distributed.Distributed.batch_mean`) and the global ``(R_x, R_u)``;
            default: the plain means over the given rows.
    """
    if batch_mean is None:
        batch_mean, rows = (lambda values, _rows: values.mean()), (len(logits_x), len(logits_u))
    l_x = batch_mean(soft_cross_entropy(logits_x, targets_x), rows[0])
    l_u = batch_mean(squared_error(logits_u, targets_u), rows[1])
    return l_x, l_u


def squared_error(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(softmax(z) − t)²`` elementwise, ``(R, C)``: MixMatch's unlabeled loss before its means (DivideMix averages
    it over rows and classes; Manifold DivideMix masks rows first)."""
    return (torch.softmax(logits.float(), dim=1) - targets) ** 2


def linear_rampup(current: float, warm_up: int, rampup_length: int = 16) -> float:
    """``clip((current − warm_up) / rampup_length, 0, 1)``; ``current`` = epoch + batch_idx / num_iter (a float)."""
    return min(max((current - warm_up) / rampup_length, 0.0), 1.0)


def lambda_u_at(t: float, warm_up: int, lambda_u: float, length: int = 16) -> float:
    """Ramped unlabeled-loss weight ``λ_u(t) = λ_u · clip((t − warm_up)/length, 0, 1)``.

    DivideMix's ``linear_rampup``; ``t`` = epoch + batch_idx / num_iter.
    """
    return lambda_u * linear_rampup(t, warm_up, length)


def uniform_prior_penalty(logits: torch.Tensor, *, combine=None, rows: int | None = None) -> torch.Tensor:
    """DivideMix regulariser ``L_reg = Σ_c π_c log(π_c / p̄_c)`` = KL(π ‖ p̄), π uniform, p̄ = mean softmax.

    Penalises a batch whose average prediction drifts from uniform (prevents collapsing every sample onto one
    class). ``logits`` ``(M, C)`` (DivideMix: all 4B mixed rows) → scalar ≥ 0, 0 iff p̄ is uniform.
    ``log p̄`` is taken as ``logsumexp_i log softmax(z_i) − log M`` so that a class with vanishing mean probability
    gives a large finite penalty rather than ``log 0``.

    Under torchrun p̄ is the mean over the global batch: ``combine`` merges the per-class logsumexp of every rank
    with gradients (:meth:`noisyclr.distributed.Distributed.logsumexp_over_ranks`) and ``rows`` is the global M.
    """
    m, c = logits.shape
    lse = torch.logsumexp(F.log_softmax(logits.float(), dim=1), dim=0)
    if combine is not None:
        lse, m = combine(lse), rows
    log_p_bar = lse - math.log(m)
    return (-math.log(c) - log_p_bar).sum() / c
