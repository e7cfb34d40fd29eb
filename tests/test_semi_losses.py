"""DivideMix / MixMatch pieces: sharpening, co-refinement, co-guessing, generator-driven MixUp, Beta/Gamma sampling,
the semi-supervised losses, the λ_u ramp-up and the uniform-prior penalty."""

import math

import pytest
import torch

from noisyclr.losses.semi import (
    co_guess,
    co_refine,
    lambda_u_at,
    linear_rampup,
    mixmatch,
    mixmatch_losses,
    sample_beta,
    sample_gamma,
    sharpen,
    uniform_prior_penalty,
)

# float32 results against float64 hand values: a few float32 ulps of round-off, which differ between CPUs (their
# vectorised exp/log kernels differ), pass; a wrong formula (e.g. a reversed KL, a sum for a mean) moves them by > 5e-4.
F32 = {"rel": 1e-5, "abs": 1e-6}

# ------------------------------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------------------------------


def test_sharpen_hand_value():
    # T = 0.5 squares: (0.25, 0.0625, 0.0625) / 0.375 = (2/3, 1/6, 1/6)
    p = torch.tensor([[0.5, 0.25, 0.25]])
    assert torch.allclose(sharpen(p, 0.5), torch.tensor([[2 / 3, 1 / 6, 1 / 6]]))
    # T = 1 is the identity; zeros stay zero; a tiny T gives a one-hot instead of 0/0
    assert torch.allclose(sharpen(p, 1.0), p)
    q = torch.tensor([[0.7, 0.3, 0.0]])
    assert sharpen(q, 0.5)[0, 2] == 0
    assert torch.allclose(sharpen(q, 0.001), torch.tensor([[1.0, 0.0, 0.0]]))


def test_co_refine_limits_and_hand_value():
    p1 = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    p2 = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    mean = torch.tensor([[0.7, 0.3], [0.3, 0.7]])
    assert torch.allclose(co_refine([p1, p2], y, torch.ones(2)), y)
    assert torch.allclose(co_refine([p1, p2], y, torch.zeros(2)), mean)
    # w = (0.5, 0.25): row 0 = 0.5·(0,1) + 0.5·(0.7,0.3) = (0.35, 0.65); row 1 = 0.25·(1,0) + 0.75·(0.3,0.7)
    expected = torch.tensor([[0.35, 0.65], [0.475, 0.525]])
    assert torch.allclose(co_refine([p1, p2], y, torch.tensor([0.5, 0.25])), expected)


def test_co_guess_is_mean():
    ps = [
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([[0.0, 1.0]]),
        torch.tensor([[0.5, 0.5]]),
        torch.tensor([[1.0, 0.0]]),
    ]
    assert torch.allclose(co_guess(ps), torch.tensor([[0.625, 0.375]]))


# ------------------------------------------------------------------------------------------------------------------
# Beta / Gamma sampling through a generator
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a,b", [(4.0, 4.0), (0.5, 0.5), (2.0, 5.0), (1.0, 1.0)])
def test_beta_moments(a, b):
    g = torch.Generator().manual_seed(0)
    s = sample_beta(a, b, generator=g, size=(100_000,))
    mean = a / (a + b)
    var = a * b / ((a + b) ** 2 * (a + b + 1))  # α = β = 4: 1/(4(2α+1)) = 1/36
    assert ((s >= 0) & (s <= 1)).all()
    assert s.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(var / 100_000))
    assert s.var().item() == pytest.approx(var, rel=0.03)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 3.0])
def test_gamma_moments(alpha):
    g = torch.Generator().manual_seed(1)
    s = sample_gamma(alpha, generator=g, size=(100_000,))
    assert (s > 0).all()
    assert s.mean().item() == pytest.approx(alpha, rel=0.02)
    assert s.var().item() == pytest.approx(alpha, rel=0.05)


def test_sampler_consumes_a_value_independent_amount_of_randomness():
    # bit-exact resumption: the generator advances by the same amount whatever was accepted, for any α ≥ 1
    states = []
    for alpha in (1.0, 4.0, 50.0):
        g = torch.Generator().manual_seed(3)
        sample_beta(alpha, alpha, generator=g, size=(7,))
        states.append(g.get_state())
    assert torch.equal(states[0], states[1]) and torch.equal(states[0], states[2])


# ------------------------------------------------------------------------------------------------------------------
# MixMatch
# ------------------------------------------------------------------------------------------------------------------


def _batch(seed=0, rows=8, classes=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 2, 4, 4, generator=g)
    y = torch.softmax(torch.randn(rows, classes, generator=g), dim=1)
    return x, y


def test_mixmatch_rows_are_lambda_mixes_of_a_permutation():
    x, y = _batch()
    mixed_x, mixed_y, lam = mixmatch(x, y, 4.0, torch.Generator().manual_seed(11))
    assert lam.dim() == 0 and lam.dtype == torch.float32 and 0.5 <= lam.item() <= 1.0
    assert mixed_x.shape == x.shape and mixed_y.shape == y.shape
    # recover the partner of every row from the returned quantities: (x̃ − λ'x)/(1 − λ') must be a row of x
    partner = (mixed_x - lam * x) / (1 - lam)
    perm = torch.cdist(partner.flatten(1), x.flatten(1)).argmin(dim=1)
    assert torch.equal(perm.sort().values, torch.arange(len(x)))  # a permutation
    assert torch.allclose(mixed_x, lam * x + (1 - lam) * x[perm], atol=1e-6)
    assert torch.allclose(mixed_y, lam * y + (1 - lam) * y[perm], atol=1e-6)  # same π for the targets
    assert torch.allclose(mixed_y.sum(dim=1), torch.ones(len(y)))


def test_mixmatch_lambda_prime_at_least_half():
    x, y = _batch()
    g = torch.Generator().manual_seed(12)
    lams = torch.stack([mixmatch(x, y, 0.5, g)[2] for _ in range(200)])
    assert (lams >= 0.5).all() and (lams <= 1.0).all()


def test_mixmatch_same_seed_same_result_and_list_inputs():
    x, y = _batch()
    a = mixmatch(x, y, 4.0, torch.Generator().manual_seed(13))
    b = mixmatch(list(x.split(2)), list(y.split(2)), 4.0, torch.Generator().manual_seed(13))
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    c = mixmatch(x, y, 4.0, torch.Generator().manual_seed(14))
    assert not torch.equal(a[0], c[0])


def test_mixmatch_rejects_mismatched_rows():
    x, y = _batch()
    with pytest.raises(ValueError):
        mixmatch(x, y[:-1], 4.0, torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------------------------------------
# losses and schedules
# ------------------------------------------------------------------------------------------------------------------


def test_mixmatch_losses_hand_values():
    # softmax(log 2, 0, 0) = (1/2, 1/4, 1/4); target class 1 -> L_x = log 4
    logits_x = torch.tensor([[math.log(2.0), 0.0, 0.0], [0.0, 0.0, 0.0]])
    targets_x = torch.tensor([[0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    # row 1: uniform prediction against a uniform target -> CE = log 3; mean of the two rows
    # unlabeled: softmax(0, 0) = (½, ½) vs (1, 0): squared errors (¼, ¼), mean over rows and classes -> ¼
    # second row: softmax(log 3, 0) = (¾, ¼) vs (¾, ¼) -> 0; overall mean (¼ + ¼ + 0 + 0)/4 = 1/8
    logits_u = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    targets_u = torch.tensor([[1.0, 0.0], [0.75, 0.25]])
    l_x, l_u = mixmatch_losses(logits_x, targets_x, logits_u, targets_u)
    assert l_x.item() == pytest.approx((math.log(4) + math.log(3)) / 2, **F32)
    assert l_u.item() == pytest.approx(1 / 8, **F32)


def test_rampup_values():
    assert linear_rampup(10.0, 10) == 0.0
    assert linear_rampup(5.0, 10) == 0.0  # before the end of warm-up: clipped at 0
    assert linear_rampup(18.0, 10) == 0.5
    assert linear_rampup(30.0, 10) == 1.0  # clipped at 1
    assert linear_rampup(14.0, 10, rampup_length=8) == 0.5
    assert lambda_u_at(10.0, 10, 25.0) == 0.0
    assert lambda_u_at(18.0, 10, 25.0) == 12.5
    assert lambda_u_at(30.0, 10, 25.0) == 25.0


def test_uniform_prior_penalty():
    # uniform mean prediction from non-uniform rows: (¾, ¼) and (¼, ¾) average to (½, ½) -> 0
    z = torch.tensor([[math.log(3.0), 0.0], [0.0, math.log(3.0)]])
    assert uniform_prior_penalty(z).item() == pytest.approx(0.0, abs=1e-6)
    # p̄ = ((¾ + ½)/2, (¼ + ½)/2) = (0.625, 0.375): ½ log(0.5/0.625) + ½ log(0.5/0.375)
    z = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    assert uniform_prior_penalty(z).item() == pytest.approx(0.5 * math.log(0.8) + 0.5 * math.log(4 / 3), **F32)
    # a class nobody predicts gives a large, finite penalty
    assert torch.isfinite(uniform_prior_penalty(torch.tensor([[200.0, 0.0]])))


def test_semi_loss_decreases_under_sgd():
    # a few SGD steps on free logits lower L_x + L_u + L_reg (solo-learn style)
    g = torch.Generator().manual_seed(4)
    logits = torch.nn.Parameter(torch.randn(8, 4, generator=g))
    targets = sharpen(torch.softmax(torch.randn(8, 4, generator=g), dim=1), 0.5)

    def total():
        l_x, l_u = mixmatch_losses(logits[:4], targets[:4], logits[4:], targets[4:])
        return l_x + 25.0 * l_u + uniform_prior_penalty(logits)

    opt = torch.optim.SGD([logits], lr=0.1)
    first = total().item()
    for _ in range(10):
        opt.zero_grad()
        total().backward()
        opt.step()
    assert total().item() < first
