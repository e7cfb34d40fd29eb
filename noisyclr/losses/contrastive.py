"""Contrastive losses: the PLR loss of PLReMix / BPT-PLR, FlatNCE, InfoNCE (NT-Xent), and the PLR top-k schedule.

Conventions shared by every function here:

* ``features`` has shape ``(N, V, D)``: N samples, V ≥ 2 views each, D-dimensional embeddings. They are
  L2-normalised inside (again), so ``s_ab = ⟨z_a, z_b⟩`` is a cosine similarity.
* The N·V embeddings are stacked **view-major** into ``A = N·V`` anchors: anchor ``a = v·N + i`` is view ``v`` of
  sample ``i`` (``torch.cat(torch.unbind(features, 1))``), the order the reference code uses, so an ``(N, N)``
  sample mask tiles to anchors with ``mask.repeat(V, V)``.
* Masked log-sum-exps fill excluded entries with ``-inf`` before ``torch.logsumexp`` (never ``exp(x)·0``, which
  turns into ``inf·0 = nan`` once ``exp`` overflows). A row with nothing to sum is filled with zeros instead of
  ``-inf`` and then weighted out, because the backward of an all-``-inf`` logsumexp is ``nan`` and ``0·nan`` stays
  ``nan``.
* No ``.item()`` and no Python branching on tensor values: every "is this row empty?" decision is a tensor mask, so
  the functions run unchanged (and without host syncs) on CUDA.
* Half/bfloat16 inputs are promoted to float32; float64 stays float64 (``gradcheck`` in the tests needs it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "flat_nce_loss",
    "flat_plr_potential",
    "info_nce_loss",
    "kappa_schedule",
    "nt_xent",
    "plr_loss",
    "reliable_negative_mask",
]


# --------------------------------------------------------------------------------------------------------------
# reliable negatives from pseudo-labels (docs/methods/plremix.md, "Contrastive losses, exactly")
# --------------------------------------------------------------------------------------------------------------


def reliable_negative_mask(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """PLR sample mask ``M ∈ {−1, 0, +1}^{N×N}`` from stored logits and noisy labels (PLReMix ``build_mask_step``).

    Candidate classes per sample:

        T_i = TopK(o_i, k) ∪ {ỹ_i}   if k ≥ 1
        T_i = {argmax o_i}            if k = 0   (the label is not used)

    With ``H`` the ``(N, C)`` multi-hot matrix of the ``T_i``, the overlap count is ``c = H Hᵀ`` and

        M_ij = −1 if c_ij = 0 (reliable negative: the two samples share no candidate class),
        M_ij =  0 if c_ij > 0 (ignored: they *might* share a class, so they are neither pulled nor pushed),
        M_ii = +1 (the only positive of a sample is its own other view(s)).

    Args:
        logits: ``(N, C)`` stored logits ``o_i`` (PLReMix: the *peer* network's eval-mode logits from the start of
            the epoch). Top-k on logits equals top-k on probabilities, softmax being monotonic.
        labels: ``(N,)`` int64 noisy labels ``ỹ_i`` (included in ``T_i`` for unlabeled samples too).
        k: κ, the number of top classes, ``0 ≤ k ≤ C`` (see :func:`kappa_schedule`).

    Returns:
        ``(N, N)`` int8 tensor with values in {−1, 0, 1}, on ``logits.device``. Ties in the top-k are broken by
        ``torch.topk`` (implementation-defined among equal logits).
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    n, c = logits.shape
    if not 0 <= k <= c:
        raise ValueError(f"k must be in [0, {c}], got {k}")
    hot = torch.zeros(n, c, device=logits.device, dtype=torch.float32)
    if k == 0:
        hot.scatter_(1, logits.argmax(dim=1, keepdim=True), 1.0)
    else:
        hot.scatter_(1, logits.topk(k, dim=1).indices, 1.0)
        hot.scatter_(1, labels.to(device=logits.device, dtype=torch.long).view(n, 1), 1.0)
    # float matmul: integer matmul is not implemented on CUDA; counts ≤ C are exact in float32
    overlap = hot @ hot.T
    mask = torch.where(overlap == 0, -1, 0).to(torch.int8)
    mask.fill_diagonal_(1)
    return mask


def kappa_schedule(epoch: int, milestones: tuple[int, ...] = (40, 70), start: int = 3) -> int:
    """PLR top-k κ at ``epoch`` (0-based, warm-up included): ``max(start − #{m ∈ milestones : epoch ≥ m}, 0)``.

    Defaults give PLReMix CIFAR/Tiny 3 → 2 → 1 at epochs 40 and 70; Clothing1M/WebVision use ``(15, 30)``.
    BPT-PLR's released script never reaches 1 (its ``elif epoch >= 70`` branch is dead): reproduce that with
    ``milestones=(40,)``.
    """
    return max(start - sum(epoch >= m for m in milestones), 0)


# --------------------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------------------


def _upcast(x: torch.Tensor) -> torch.Tensor:
    # half precision similarities at τ = 0.1 lose too many digits in exp/log; float64 is kept for gradcheck
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _anchor_similarities(features: torch.Tensor) -> torch.Tensor:
    """Normalise ``(N, V, D)`` features, stack view-major into ``(A, D)``, return the ``(A, A)`` cosine matrix."""
    if features.dim() != 3:
        raise ValueError(f"features must be (N, V, D), got shape {tuple(features.shape)}")
    if features.shape[1] < 2:
        raise ValueError(f"contrastive losses need V ≥ 2 views per sample, got V = {features.shape[1]}")
    z = F.normalize(_upcast(features), dim=-1)
    z = torch.cat(torch.unbind(z, dim=1), dim=0)  # view-major: anchor a = v·N + i
    # autocast would run this matmul in half precision: ~1e-3 error in s becomes ~1e-2 in s/τ at τ = 0.1
    with torch.autocast(device_type=z.device.type, enabled=False):
        return z @ z.T


def _tiled_masks(mask: torch.Tensor, n_views: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile an ``(N, N)`` sample mask to ``(A, A)`` anchors and split it into (positive, negative) bool masks.

    The diagonal (self-contrast) is removed, as the reference does with ``mask · (1 − I)``. With the masks of
    :func:`reliable_negative_mask` (``+1`` only on the diagonal) the positives of anchor (i, v) are exactly the
    other views (i, v'≠v); an off-diagonal ``+1`` in a user mask is honoured as a positive (SupCon semantics).
    """
    tiled = mask.repeat(n_views, n_views)
    off_diag = ~torch.eye(tiled.shape[0], dtype=torch.bool, device=tiled.device)
    return (tiled == 1) & off_diag, (tiled == -1) & off_diag


def _masked_logsumexp(x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ``log Σ_{b: keep_ab} exp(x_ab)`` and a bool "row has ≥ 1 kept entry".

    Rows with no kept entry are filled with zeros (finite value, finite gradient) so that the caller can weight them
    out with the returned flag without ``nan`` leaking into the backward pass.
    """
    nonempty = keep.any(dim=1)
    fill = torch.where(nonempty, float("-inf"), 0.0).to(x.dtype).unsqueeze(1)
    return torch.logsumexp(torch.where(keep, x, fill), dim=1), nonempty


# --------------------------------------------------------------------------------------------------------------
# PLR loss (docs/methods/plremix.md, "Contrastive losses, exactly")
# --------------------------------------------------------------------------------------------------------------


def flat_plr_potential(
    features: torch.Tensor, mask: torch.Tensor, *, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor FlatNCE potential of the flat PLR loss, and which anchors have a negative.

        v_a = log Σ_{b∈N(a)} exp( (s_ab − Σ_{p∈P(a)} s_ap) / τ )

    Args:
        features: ``(N, V, D)``.
        mask: ``(N, N)`` in {−1, 0, 1} (see :func:`reliable_negative_mask`).
        temperature: τ.

    Returns:
        ``v`` of shape ``(A,)`` (A = N·V, view-major) and ``has_negative`` ``(A,)`` bool. Where ``has_negative`` is
        False, ``v`` holds a finite placeholder (``log A``-like) that must be ignored. The gradient of the flat PLR
        loss is ``mean_{a: has_negative} ∇v_a``.
    """
    sim = _anchor_similarities(features)
    pos, neg = _tiled_masks(mask.to(sim.device), features.shape[1])
    sum_pos = torch.where(pos, sim, 0.0).sum(dim=1, keepdim=True)
    return _masked_logsumexp((sim - sum_pos) / temperature, neg)


def plr_loss(
    features: torch.Tensor, mask: torch.Tensor, *, temperature: float = 1.0, flat: bool = False
) -> torch.Tensor:
    """Pseudo-Label Relaxed contrastive loss of PLReMix (BPT-PLR uses ``flat=False``).

    Method: docs/methods/plremix.md, "Contrastive losses, exactly" (Tiling, Non-flat PLR, Flat PLR).

    Features are re-normalised and stacked view-major into A = N·V anchors; the ``(N, N)`` mask is tiled V×V and
    its diagonal zeroed. For anchor a: positives P(a) = entries +1 (the other views of the same sample), negatives
    N(a) = entries −1 (samples with disjoint candidate sets), everything else ignored — absent from numerator
    *and* denominator. ``s_ab`` is the cosine similarity.

    Non-flat (``flat=False``, SupCon form)::

        ℓ_a = −(1/|P(a)|) Σ_{p∈P(a)} [ s_ap/τ − log Σ_{b∈P(a)∪N(a)} exp(s_ab/τ) ],  L = (1/A) Σ_a ℓ_a

    The mean is over **all** A anchors. An anchor with no negatives has the log-sum over its positives only; for
    V = 2 (one positive) that is exactly ``ℓ_a = s_ap − s_ap = 0``, so it contributes 0 and still counts in the
    mean, as the method page states. For V > 2 such an anchor is *not* 0 (it is ``logsumexp_P − mean_P`` ≥ 0,
    which still pulls its views together) — this is what the reference computes, and we follow the formula.
    An anchor with no positive (only possible with a user mask whose diagonal is not +1) contributes 0.

    Flat (``flat=True``, FlatNCE surrogate): with v_a from :func:`flat_plr_potential` and
    A' = {a : |N(a)| ≥ 1}::

        L = (1/|A'|) Σ_{a∈A'} exp(v_a − stopgrad(v_a))

    whose value is identically 1 and whose gradient is ``mean_{a∈A'} ∇v_a``. If A' is empty the result is a 0
    that keeps the autograd graph (zero gradients), so ``backward()`` still works.

    Args:
        features: ``(N, V, D)`` embeddings (projector outputs), V ≥ 2.
        mask: ``(N, N)`` in {−1, 0, 1}, any integer or float dtype.
        temperature: τ; PLReMix/BPT-PLR use 1 (unlike the 0.1 of the warm-up InfoNCE).
        flat: the flat (FlatNCE) variant.

    Returns:
        A scalar tensor.
    """
    if flat:
        v, has_neg = flat_plr_potential(features, mask, temperature=temperature)
        w = has_neg.to(v.dtype)
        # w·exp(v − sg v): the placeholder v of anchors without negatives gets weight 0 and a finite gradient
        return (w * torch.exp(v - v.detach())).sum() / w.sum().clamp_min(1.0)

    sim = _anchor_similarities(features)
    pos, neg = _tiled_masks(mask.to(sim.device), features.shape[1])
    logits = sim / temperature
    lse, _ = _masked_logsumexp(logits, pos | neg)
    n_pos = pos.sum(dim=1)
    # log-probability of each positive; only the P(a) entries are summed
    mean_log_prob_pos = torch.where(pos, logits - lse.unsqueeze(1), 0.0).sum(dim=1) / n_pos.clamp_min(1)
    return -mean_log_prob_pos.mean()


# --------------------------------------------------------------------------------------------------------------
# warm-up contrastive losses: all other embeddings are negatives
# (docs/methods/plremix.md, "Contrastive losses, exactly", Warm-up losses)
# --------------------------------------------------------------------------------------------------------------


def flat_nce_loss(features: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """FlatNCE (Chen et al. 2021) as in the PLReMix CIFAR/Tiny warm-up (``--crl flat_plr``).

    Every embedding of another sample is a negative, the other views of the same sample are the positives::

        v_a = log Σ_{b∈N(a)} exp( (s_ab − Σ_{p∈P(a)} s_ap) / τ ),    L = mean_a exp(v_a − stopgrad(v_a))

    Value identically 1, gradient ``mean_a ∇v_a``. It is :func:`plr_loss` with ``flat=True`` and the all-negative
    mask ``2I − 1``. ``features``: ``(N, V, D)`` with N ≥ 2 (with N = 1 there are no negatives and it returns 0).
    """
    n = features.shape[0]
    mask = 2 * torch.eye(n, dtype=torch.int8, device=features.device) - 1
    return plr_loss(features, mask, temperature=temperature, flat=True)


def info_nce_loss(features: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE / NT-Xent (SimCLR): a cross-entropy over [positive, negatives] per (anchor, positive) pair.

    With A = N·V anchors, P(a) the V − 1 other views of a's sample and N(a) all V·(N − 1) embeddings of the other
    samples::

        ℓ_a = (1/|P(a)|) Σ_{p∈P(a)} −log [ exp(s_ap/τ) / ( exp(s_ap/τ) + Σ_{n∈N(a)} exp(s_an/τ) ) ]
        L   = (1/A) Σ_a ℓ_a

    For V = 2 this is exactly SimCLR's NT-Xent over the 2N anchors. For V > 2 each positive is its own
    classification problem against the negatives (the other positives are *not* in its denominator) and the
    anchor averages them.

    This deliberately does **not** reproduce the reference ``InfoNCELoss`` quirks (docs/methods/plremix.md,
    "Contrastive losses, exactly", Warm-up losses): with multi-crop it puts all positives in the logits but uses
    only the first as the CE target, and on CIFAR the warm-up feeds its output through the FlatNCE formula with the
    positives unsubtracted inside the log-sum-exp, which pushes positives apart. Use :func:`flat_nce_loss` for the
    faithful CIFAR warm-up.

    Args:
        features: ``(N, V, D)`` with N ≥ 2 and V ≥ 2.
        temperature: τ (PLReMix warm-up: 0.1).

    Returns:
        A scalar tensor.
    """
    if features.dim() == 3 and features.shape[0] < 2:
        raise ValueError("InfoNCE needs at least N = 2 samples (otherwise there is no negative)")
    n, n_views = features.shape[0], features.shape[1]
    logits = _anchor_similarities(features) / temperature
    sample = torch.arange(n, device=logits.device).repeat(n_views)  # view-major: anchor a belongs to sample a % N
    same = sample.unsqueeze(0) == sample.unsqueeze(1)
    pos = same & ~torch.eye(n * n_views, dtype=torch.bool, device=logits.device)
    lse_neg, _ = _masked_logsumexp(logits, ~same)  # N ≥ 2 ⇒ every row has negatives
    # −log softmax of the positive against the negatives, evaluated for every pair and kept only on P(a)
    nll = torch.logaddexp(logits, lse_neg.unsqueeze(1)) - logits
    return (torch.where(pos, nll, 0.0).sum(dim=1) / (n_views - 1)).mean()


def nt_xent(features: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent, the SimCLR name of :func:`info_nce_loss`, with SimCLR's default τ = 0.5. ``features`` (N, V, D)."""
    return info_nce_loss(features, temperature=temperature)
