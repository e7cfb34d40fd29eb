import math

import pytest
import torch

from noisyclr.losses import (
    classification_loss,
    cross_entropy,
    generalized_cross_entropy,
    mean_absolute_error,
    negative_entropy,
    soft_cross_entropy,
)

# float32 results against float64 hand values: a few float32 ulps of round-off, which differ between CPUs (their
# vectorised exp/log kernels differ), pass; a wrong formula or label moves these values by > 1e-3.
F32 = {"rel": 1e-5, "abs": 1e-6}

# logits whose softmax is exactly (0.5, 0.25, 0.25): log-probabilities log 2 apart
LOGITS = torch.tensor([[math.log(2.0), 0.0, 0.0]])


def test_cross_entropy_hand_value():
    assert cross_entropy(LOGITS, torch.tensor([0])).item() == pytest.approx(math.log(2), **F32)
    assert cross_entropy(LOGITS, torch.tensor([1])).item() == pytest.approx(math.log(4), **F32)


def test_soft_cross_entropy_matches_hard_on_one_hot_and_hand_value():
    t = torch.tensor([[0.0, 1.0, 0.0]])
    assert soft_cross_entropy(LOGITS, t).item() == pytest.approx(math.log(4), **F32)
    t = torch.tensor([[0.5, 0.5, 0.0]])
    assert soft_cross_entropy(LOGITS, t).item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(4), **F32)


def test_gce_hand_value_and_limits():
    # (1 - 0.5^0.7) / 0.7
    gce = generalized_cross_entropy(LOGITS, torch.tensor([0]), q=0.7).item()
    assert gce == pytest.approx((1 - 0.5**0.7) / 0.7, **F32)
    # q = 1 is half of MAE; q -> 0 approaches CE
    y = torch.tensor([1])
    assert generalized_cross_entropy(LOGITS, y, q=1.0).item() == pytest.approx(0.75, **F32)
    assert generalized_cross_entropy(LOGITS, y, q=1e-4).item() == pytest.approx(math.log(4), rel=1e-3)
    with pytest.raises(ValueError):
        generalized_cross_entropy(LOGITS, y, q=0.0)


def test_mae_hand_value():
    assert mean_absolute_error(LOGITS, torch.tensor([0])).item() == pytest.approx(1.0, **F32)
    assert mean_absolute_error(LOGITS, torch.tensor([2])).item() == pytest.approx(1.5, **F32)


def test_negative_entropy_hand_value():
    expected = 0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)
    assert negative_entropy(LOGITS).item() == pytest.approx(expected, **F32)
    uniform = torch.zeros(4, 5)
    assert negative_entropy(uniform).item() == pytest.approx(-math.log(5), **F32)


def test_reductions_and_dispatch():
    logits = torch.randn(6, 4)
    y = torch.randint(0, 4, (6,))
    per = classification_loss("gce", logits, y, q=0.5)
    assert per.shape == (6,)
    assert classification_loss("gce", logits, y, q=0.5, reduction="mean").item() == pytest.approx(per.mean().item())
    with pytest.raises(ValueError):
        classification_loss("focal", logits, y)


@pytest.mark.parametrize("name", ["ce", "gce", "mae"])
def test_a_few_sgd_steps_lower_each_loss(name):
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    y = torch.randint(0, 3, (32,))
    model = torch.nn.Linear(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = classification_loss(name, model(x), y, reduction="mean").item()
    for _ in range(20):
        loss = classification_loss(name, model(x), y, reduction="mean")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
