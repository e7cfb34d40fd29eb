"""Contrastive losses: the PLR mask, non-flat and flat PLR, FlatNCE, InfoNCE / NT-Xent, the κ schedule.

Hand values are worked out in the comments; random cases are compared with naive per-anchor loops written here
independently of the library's vectorised code.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from noisyclr.losses.contrastive import (
    flat_nce_loss,
    flat_plr_potential,
    info_nce_loss,
    kappa_schedule,
    nt_xent,
    plr_loss,
    reliable_negative_mask,
)

# float32 results against float64 hand values: a few float32 ulps of round-off, which differ between CPUs (their
# vectorised exp/log kernels differ), pass; a wrong mask, τ or normalisation moves them by > 1e-2.
F32 = {"rel": 1e-5, "abs": 1e-6}

# ------------------------------------------------------------------------------------------------------------------
# reliable negative mask (§3.1)
# ------------------------------------------------------------------------------------------------------------------

# 4 samples, 4 classes. Descending logit order per row:
#   o0: 0 > 1 > 2 > 3    o1: 1 > 2 > 3 > 0    o2: 2 > 3 > 1 > 0    o3: 3 > 0 > 2 > 1
MASK_LOGITS = torch.tensor(
    [
        [4.0, 3.0, 2.0, 1.0],
        [1.0, 4.0, 3.0, 2.0],
        [1.0, 2.0, 4.0, 3.0],
        [3.0, 1.0, 2.0, 4.0],
    ]
)
MASK_LABELS = torch.tensor([0, 3, 2, 0])


def test_mask_k1_literal():
    # T0 = {0}, T1 = {1} ∪ {3}, T2 = {2}, T3 = {3} ∪ {0}
    # shared: (0,3) via class 0, (1,3) via class 3; every other pair is disjoint -> -1
    expected = torch.tensor(
        [
            [1, -1, -1, 0],
            [-1, 1, -1, 0],
            [-1, -1, 1, -1],
            [0, 0, -1, 1],
        ],
        dtype=torch.int8,
    )
    mask = reliable_negative_mask(MASK_LOGITS, MASK_LABELS, 1)
    assert mask.dtype == torch.int8
    assert torch.equal(mask, expected)


def test_mask_k2_literal():
    # T0 = {0,1}, T1 = {1,2} ∪ {3}, T2 = {2,3}, T3 = {3,0} ∪ {0}
    # only (0,2) is disjoint ({0,1} ∩ {2,3} = ∅)
    expected = torch.tensor(
        [
            [1, 0, -1, 0],
            [0, 1, 0, 0],
            [-1, 0, 1, 0],
            [0, 0, 0, 1],
        ],
        dtype=torch.int8,
    )
    assert torch.equal(reliable_negative_mask(MASK_LOGITS, MASK_LABELS, 2), expected)


def test_mask_k0_uses_argmax_only():
    # argmaxes 0, 1, 2, 3 are all different and the labels are ignored: every off-diagonal pair is a negative
    expected = (2 * torch.eye(4) - 1).to(torch.int8)
    assert torch.equal(reliable_negative_mask(MASK_LOGITS, MASK_LABELS, 0), expected)
    # same argmax for samples 0 and 3 -> ignored pair, whatever the labels say
    logits = MASK_LOGITS.clone()
    logits[3] = torch.tensor([5.0, 1.0, 2.0, 4.0])
    mask = reliable_negative_mask(logits, torch.tensor([3, 3, 3, 3]), 0)
    assert mask[0, 3] == 0 and mask[3, 0] == 0 and mask[1, 2] == -1


def test_mask_k_equals_c_ignores_everything_and_validates_k():
    mask = reliable_negative_mask(MASK_LOGITS, MASK_LABELS, 4)
    assert torch.equal(mask, torch.eye(4, dtype=torch.int8))
    with pytest.raises(ValueError):
        reliable_negative_mask(MASK_LOGITS, MASK_LABELS, 5)
    with pytest.raises(ValueError):
        reliable_negative_mask(MASK_LOGITS, MASK_LABELS, -1)


def test_kappa_schedule():
    assert [kappa_schedule(e) for e in (0, 39, 40, 69, 70, 400)] == [3, 3, 2, 2, 1, 1]
    assert [kappa_schedule(e, (15, 30)) for e in (14, 15, 29, 30)] == [3, 2, 2, 1]
    # BPT-PLR's released behaviour: 3 -> 2 at 40, never 1
    assert kappa_schedule(300, milestones=(40,)) == 2
    assert kappa_schedule(100, milestones=(1, 2, 3, 4), start=3) == 0


# ------------------------------------------------------------------------------------------------------------------
# naive references (loops over anchors, written independently of the vectorised code)
# ------------------------------------------------------------------------------------------------------------------


def _anchors(features):
    n, v, _ = features.shape
    z = F.normalize(features, dim=-1)
    # view-major: anchor a = view * N + sample
    return [(a % n, z[a % n, a // n]) for a in range(n * v)]


def _naive_plr(features, mask, tau):
    anchors = _anchors(features)
    losses = []
    for a, (i, za) in enumerate(anchors):
        pos = [float(za @ zb) for b, (j, zb) in enumerate(anchors) if b != a and j == i and mask[i, j] == 1]
        neg = [float(za @ zb) for b, (j, zb) in enumerate(anchors) if b != a and mask[i, j] == -1]
        log_den = math.log(sum(math.exp(s / tau) for s in pos + neg))
        losses.append(-sum(s / tau - log_den for s in pos) / len(pos))
    return sum(losses) / len(losses)


def _naive_flat_v(features, mask, tau):
    """v_a for anchors with ≥ 1 negative (autograd-able: built from tensors)."""
    anchors = _anchors(features)
    vs = []
    for a, (i, za) in enumerate(anchors):
        pos = [za @ zb for b, (j, zb) in enumerate(anchors) if b != a and j == i and mask[i, j] == 1]
        neg = [za @ zb for b, (j, zb) in enumerate(anchors) if b != a and mask[i, j] == -1]
        if neg:
            sp = sum(pos)
            vs.append(torch.log(sum(torch.exp((s - sp) / tau) for s in neg)))
    return torch.stack(vs)


def _naive_info_nce(features, tau):
    anchors = _anchors(features)
    total = []
    for a, (i, za) in enumerate(anchors):
        pos = [float(za @ zb) / tau for b, (j, zb) in enumerate(anchors) if b != a and j == i]
        neg = [float(za @ zb) / tau for b, (j, zb) in enumerate(anchors) if j != i]
        neg_sum = sum(math.exp(s) for s in neg)
        total.append(sum(-(s - math.log(math.exp(s) + neg_sum)) for s in pos) / len(pos))
    return sum(total) / len(total)


# two samples x two identical views; the samples are orthogonal
E1, E2 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
TWO_BY_TWO = torch.stack([torch.stack([E1, E1]), torch.stack([E2, 3.0 * E2])])  # 3·e2: re-normalisation is tested
ALL_NEG = torch.tensor([[1, -1], [-1, 1]], dtype=torch.int8)


# ------------------------------------------------------------------------------------------------------------------
# non-flat PLR (§3.3)
# ------------------------------------------------------------------------------------------------------------------


def test_plr_hand_value_two_samples_two_views():
    # each anchor: positive s = 1, two negatives s = 0 (the other sample's two views)
    # ℓ = −[1/τ − log(e^{1/τ} + 2 e^0)]
    assert plr_loss(TWO_BY_TWO, ALL_NEG).item() == pytest.approx(math.log(math.e + 2.0) - 1.0, **F32)
    # τ = 0.5: ℓ = −[2 − log(e² + 2)] = log(1 + 2 e^{−2})
    assert plr_loss(TWO_BY_TWO, ALL_NEG, temperature=0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), **F32)


def test_plr_anchor_without_negatives_contributes_zero_but_counts():
    # nothing is negative: every anchor's log-sum runs over its single positive -> ℓ = s − s = 0
    assert plr_loss(TWO_BY_TWO, torch.eye(2, dtype=torch.int8)).item() == pytest.approx(0.0, abs=1e-6)
    # asymmetric mask: sample 0 sees sample 1 as negative, sample 1 ignores sample 0.
    # anchors (0,·) give log(e+2) − 1 each, anchors (1,·) give 0, and the mean is over all 4 anchors
    half = torch.tensor([[1, -1], [0, 1]], dtype=torch.int8)
    assert plr_loss(TWO_BY_TWO, half).item() == pytest.approx((math.log(math.e + 2.0) - 1.0) / 2, **F32)


@pytest.mark.parametrize("n_views", [2, 3])
@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_plr_matches_naive_supcon_loop(n_views, tau):
    g = torch.Generator().manual_seed(n_views)
    feats = torch.randn(6, n_views, 5, generator=g, dtype=torch.float64)
    mask = reliable_negative_mask(torch.randn(6, 4, generator=g), torch.randint(0, 4, (6,), generator=g), 1)
    assert plr_loss(feats, mask, temperature=tau).item() == pytest.approx(_naive_plr(feats, mask, tau), rel=1e-10)


def test_plr_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, -1, 0, -1], [-1, 1, -1, 0], [0, -1, 1, 0], [-1, 0, 0, 1]], dtype=torch.int8)
    assert torch.autograd.gradcheck(lambda f: plr_loss(f, mask, temperature=0.5), (feats,))


def test_plr_stable_at_tiny_temperature():
    # s/τ up to 200: exp overflows float32, the masked logsumexp must not
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(5, 2, 4, generator=g, requires_grad=True)
    mask = reliable_negative_mask(torch.randn(5, 3, generator=g), torch.randint(0, 3, (5,), generator=g), 1)
    for flat in (False, True):
        loss = plr_loss(feats, mask, temperature=0.005, flat=flat)
        (grad,) = torch.autograd.grad(loss, feats)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_plr_rejects_single_view():
    with pytest.raises(ValueError):
        plr_loss(torch.randn(3, 1, 4), torch.eye(3))


# ------------------------------------------------------------------------------------------------------------------
# flat PLR (§3.4)
# ------------------------------------------------------------------------------------------------------------------


def test_flat_plr_value_one_and_hand_potential():
    loss = plr_loss(TWO_BY_TWO, ALL_NEG, flat=True)
    assert loss.item() == 1.0
    # v_a = log Σ_neg exp((0 − 1)/τ) = log 2 − 1/τ for every anchor
    v, has_neg = flat_plr_potential(TWO_BY_TWO, ALL_NEG, temperature=0.5)
    assert has_neg.all()
    assert torch.allclose(v, torch.full((4,), math.log(2) - 2.0))


def test_flat_plr_gradient_is_mean_grad_of_v():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(6, 2, 5, generator=g, dtype=torch.float64, requires_grad=True)
    mask = reliable_negative_mask(torch.randn(6, 8, generator=g), torch.randint(0, 8, (6,), generator=g), 1)
    mask[5, :5] = 0  # sample 5 ignores everyone: its anchors have no negatives
    # sanity: this case has anchors with and without negatives
    _, has_neg = flat_plr_potential(feats, mask)
    assert has_neg.any() and not has_neg.all()

    loss = plr_loss(feats, mask, temperature=0.5, flat=True)
    assert loss.item() == 1.0
    (g_flat,) = torch.autograd.grad(loss, feats)
    (g_naive,) = torch.autograd.grad(_naive_flat_v(feats, mask, 0.5).mean(), feats)
    v, has_neg = flat_plr_potential(feats, mask, temperature=0.5)
    (g_lib,) = torch.autograd.grad(v[has_neg].mean(), feats)
    assert torch.allclose(g_flat, g_naive, atol=1e-12)
    assert torch.allclose(g_flat, g_lib, atol=1e-12)
    assert torch.allclose(v[has_neg], _naive_flat_v(feats, mask, 0.5).detach())


def test_flat_plr_potential_gradcheck_float64():
    g = torch.Generator().manual_seed(4)
    feats = torch.randn(4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, -1, 0, 0], [-1, 1, -1, 0], [0, -1, 1, 0], [0, 0, 0, 1]], dtype=torch.int8)

    def mean_v(f):
        v, has_neg = flat_plr_potential(f, mask, temperature=0.7)
        w = has_neg.to(v.dtype)
        return (w * v).sum() / w.sum()

    assert torch.autograd.gradcheck(mean_v, (feats,))


def test_flat_plr_without_any_negative_is_zero_with_graph():
    feats = torch.randn(3, 2, 4, requires_grad=True)
    loss = plr_loss(feats, torch.eye(3, dtype=torch.int8), flat=True)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(feats.grad, torch.zeros_like(feats))


# ------------------------------------------------------------------------------------------------------------------
# FlatNCE and InfoNCE (§2.3)
# ------------------------------------------------------------------------------------------------------------------


def test_flat_nce_value_one_and_gradient():
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(5, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    loss = flat_nce_loss(feats)
    assert loss.item() == 1.0
    (g_flat,) = torch.autograd.grad(loss, feats)
    all_neg = 2 * torch.eye(5, dtype=torch.int8) - 1
    (g_naive,) = torch.autograd.grad(_naive_flat_v(feats, all_neg, 0.1).mean(), feats)
    assert torch.allclose(g_flat, g_naive, atol=1e-10)


@pytest.mark.parametrize("n_views", [2, 3])
def test_info_nce_matches_naive_loop(n_views):
    g = torch.Generator().manual_seed(10 + n_views)
    feats = torch.randn(5, n_views, 4, generator=g, dtype=torch.float64)
    assert info_nce_loss(feats, 0.2).item() == pytest.approx(_naive_info_nce(feats, 0.2), rel=1e-10)


def test_info_nce_two_views_is_simclr_cross_entropy():
    # SimCLR's formulation: 2N×2N logits with the self-similarity removed, target = the other view
    g = torch.Generator().manual_seed(6)
    feats = torch.randn(4, 2, 8, generator=g)
    z = F.normalize(torch.cat([feats[:, 0], feats[:, 1]]), dim=1)
    logits = (z @ z.T / 0.1).masked_fill(torch.eye(8, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(4, 8), torch.arange(0, 4)])
    assert info_nce_loss(feats, 0.1).item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-5)


def test_nt_xent_hand_value():
    # three orthogonal samples, identical views: positive s = 1, four negatives s = 0, τ = 0.5 (nt_xent default)
    # ℓ = −log(e² / (e² + 4)) = log(1 + 4 e^{−2})
    e = torch.eye(3)
    feats = torch.stack([e, e], dim=1)
    assert nt_xent(feats).item() == pytest.approx(math.log(1 + 4 * math.exp(-2)), **F32)
    assert info_nce_loss(feats, 0.5).item() == pytest.approx(math.log(1 + 4 * math.exp(-2)), **F32)


# ------------------------------------------------------------------------------------------------------------------
# a few SGD steps lower the losses (solo-learn style)
# ------------------------------------------------------------------------------------------------------------------


def _descend(loss_fn, steps=20, lr=0.5, seed=7):
    g = torch.Generator().manual_seed(seed)
    feats = torch.nn.Parameter(torch.randn(8, 2, 16, generator=g))
    opt = torch.optim.SGD([feats], lr=lr)
    first = None
    for _ in range(steps):
        loss = loss_fn(feats)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, loss_fn(feats).item()


def test_plr_loss_decreases_under_sgd():
    g = torch.Generator().manual_seed(8)
    mask = reliable_negative_mask(torch.randn(8, 5, generator=g), torch.randint(0, 5, (8,), generator=g), 1)
    first, last = _descend(lambda f: plr_loss(f, mask))
    assert last < first


def test_flat_plr_lowers_its_potential_under_sgd():
    g = torch.Generator().manual_seed(9)
    mask = reliable_negative_mask(torch.randn(8, 5, generator=g), torch.randint(0, 5, (8,), generator=g), 1)
    feats = torch.nn.Parameter(torch.randn(8, 2, 16, generator=g))
    opt = torch.optim.SGD([feats], lr=0.5)

    def mean_v():
        v, has_neg = flat_plr_potential(feats, mask)
        return v[has_neg].mean().item()

    before = mean_v()
    for _ in range(20):
        opt.zero_grad()
        plr_loss(feats, mask, flat=True).backward()
        opt.step()
    assert mean_v() < before


def test_info_nce_decreases_under_sgd():
    first, last = _descend(lambda f: info_nce_loss(f, 0.1), lr=0.1)
    assert last < first
