import math

import pytest
import torch

from noisyclr.prototypes import (
    AdaptiveThreshold,
    corrected_labels,
    ema_update_prototypes,
    init_prototypes,
    prototype_logits,
)

S2 = 1 / math.sqrt(2)
S5 = 1 / math.sqrt(5)


def _unit(*v: float) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


# ---------------------------------------------------------------------------------------------------------------- init


def test_init_is_normalised_class_mean():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    # class 0: mean (0.5, 0.5) → (1/√2, 1/√2); class 1: mean (1, 2) → (1/√5, 2/√5)
    p = init_prototypes(z, y, 2)
    assert torch.allclose(p, torch.tensor([[S2, S2], [S5, 2 * S5]]))


def test_init_missing_class_is_named():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        init_prototypes(z, torch.tensor([0, 0, 2, 2]), 4)


# ----------------------------------------------------------------------------------------------------------------- EMA


P0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-2.0, 0.0]])  # row 2 deliberately not unit length
Z = torch.tensor([[0.0, 2.0], [0.0, 4.0], [1.0, 0.0], [5.0, 5.0]])
Y = torch.tensor([0, 0, 1, 2])


def test_ema_hand_values_with_mask_and_a_class_without_selected_sample():
    p = ema_update_prototypes(P0, Z, Y, torch.tensor([True, True, True, False]))
    # class 0: mean (0, 3) → m = (0, 1); 0.99·(1, 0) + 0.01·(0, 1) = (0.99, 0.01), renormalised
    # class 1: m = (1, 0); 0.99·(0, 1) + 0.01·(1, 0) = (0.01, 0.99), renormalised
    # class 2: nothing selected → stays (−2, 0), then renormalised to (−1, 0)
    expected = torch.tensor([_unit(0.99, 0.01), _unit(0.01, 0.99), [-1.0, 0.0]])
    assert torch.allclose(p, expected)


def test_ema_without_mask_uses_all_samples_and_momentum_option():
    p = ema_update_prototypes(P0, Z, Y, None, momentum=0.5)
    # class 2: m = (1/√2, 1/√2); 0.5·(−2, 0) + 0.5·m = (−1 + S2/2, S2/2)
    expected = torch.tensor([_unit(0.5, 0.5), _unit(0.5, 0.5), _unit(-1 + S2 / 2, S2 / 2)])
    assert torch.allclose(p, expected)


def test_ema_nan_in_unselected_row_does_not_leak():
    z = Z.clone()
    z[3] = float("nan")
    p = ema_update_prototypes(P0, z, Y, torch.tensor([True, True, True, False]))
    assert torch.isfinite(p).all()


# -------------------------------------------------------------------------------------------------- logits, correction


@pytest.mark.parametrize("temperature, expected", [(0.1, [[10.0, 0.0], [6.0, 8.0]]), (0.5, [[2.0, 0.0], [1.2, 1.6]])])
def test_prototype_logits(temperature, expected):
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    p = torch.eye(2)
    assert torch.allclose(prototype_logits(z, p, temperature), torch.tensor(expected))


def test_prototype_logits_default_temperature():
    assert torch.allclose(prototype_logits(torch.tensor([[0.6, 0.8]]), torch.eye(2)), torch.tensor([[6.0, 8.0]]))


L9 = math.log(9.0)


@pytest.mark.parametrize(
    "g, o, pred, threshold, expected",
    [
        ([L9, 0.0], [L9, 0.0], 1, 0.8, 0),            # s = (0.9, 0.1): 0.9 > 0.8 → relabelled to 0
        ([L9, 0.0], [0.0, 0.0], 1, 0.8, 1),           # s = (0.7, 0.3): below → keeps the prediction
        ([100.0, 0.0], [0.0, 0.0], 1, 0.75, 1),       # s = (0.75, 0.25) exactly: the rule is strict (>)
        ([100.0, 0.0], [0.0, 0.0], 1, 0.7499, 0),
        ([0.0, L9], [0.0, L9], 0, 0.8, 1),
    ],
)
def test_corrected_labels(g, o, pred, threshold, expected):
    out = corrected_labels(torch.tensor([pred]), torch.tensor([g]), torch.tensor([o]), threshold)
    assert out.tolist() == [expected]


def test_corrected_labels_batch_default_threshold():
    g = torch.tensor([[L9, 0.0], [L9, 0.0], [0.0, L9]])
    o = torch.tensor([[L9, 0.0], [0.0, 0.0], [0.0, L9]])
    assert corrected_labels(torch.tensor([1, 1, 0]), g, o).tolist() == [0, 1, 1]


# -------------------------------------------------------------------------------------------------- adaptive threshold


# q rows (epoch 0 → α = 1 → q = softmax(o)): (0.9, 0.1), (0.4, 0.6), (0.55, 0.45)
O3 = torch.tensor([[L9, 0.0], [0.0, math.log(1.5)], [math.log(11 / 9), 0.0]])
G3 = torch.zeros(3, 2)


def test_adaptive_threshold_default_momentum_hand_values():
    at = AdaptiveThreshold(2)
    assert at.tau.item() == pytest.approx(0.5) and at.class_prob.tolist() == [0.5, 0.5]
    at.update_and_select(G3, O3, epoch=0, num_epochs=100)
    # mean max q = (0.9 + 0.6 + 0.55) / 3; mean q = (1.85/3, 1.15/3)
    assert at.tau.item() == pytest.approx(0.99 * 0.5 + 0.01 * 2.05 / 3, abs=1e-6)
    assert at.class_prob.tolist() == pytest.approx([0.495 + 0.01 * 1.85 / 3, 0.495 + 0.01 * 1.15 / 3], abs=1e-6)


def test_adaptive_threshold_selection_mask_hand_computed():
    at = AdaptiveThreshold(2, momentum=0.5)
    mask = at.update_and_select(G3, O3, epoch=0, num_epochs=100)
    # τ = 0.5·0.5 + 0.5·0.68333 = 0.591667; p̃ = (0.558333, 0.441667)
    # τ_0 = 0.591667; τ_1 = 0.591667 · 0.441667 / 0.558333 = 0.468035
    assert at.tau.item() == pytest.approx(0.591667, abs=1e-5)
    assert at.class_prob.tolist() == pytest.approx([0.558333, 0.441667], abs=1e-5)
    assert at.class_thresholds().tolist() == pytest.approx([0.591667, 0.468035], abs=1e-5)
    # 0.9 ≥ τ_0; 0.6 ≥ τ_1 (class 1's threshold is lower); 0.55 < τ_0
    assert mask.tolist() == [True, True, False]


def test_adaptive_threshold_mixes_logits_not_probabilities():
    at = AdaptiveThreshold(2, momentum=0.0)  # τ becomes this call's mean max q
    g, o = torch.tensor([[4.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    at.update_and_select(g, o, epoch=50, num_epochs=100)  # α = ½ → q = softmax((2, 0))
    assert at.tau.item() == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-6)
    at.update_and_select(g, o, epoch=100, num_epochs=100)  # α = 0 → prototypes only: softmax((4, 0))
    assert at.tau.item() == pytest.approx(1 / (1 + math.exp(-4.0)), abs=1e-6)


def test_adaptive_threshold_updates_before_selecting():
    # q maxima 0.55 and 0.99, both class 0. The stale τ = 0.5 would select both; the updated
    # τ = 0.5·0.5 + 0.5·0.77 = 0.635 (= τ_0, class 0 has the larger p̃) rejects the first.
    at = AdaptiveThreshold(2, momentum=0.5)
    o = torch.tensor([[math.log(11 / 9), 0.0], [math.log(99.0), 0.0]])
    mask = at.update_and_select(torch.zeros(2, 2), o, epoch=0, num_epochs=10)
    assert at.tau.item() == pytest.approx(0.635, abs=1e-6)
    assert at.class_prob.tolist() == pytest.approx([0.635, 0.365], abs=1e-6)
    assert mask.tolist() == [False, True]


def test_adaptive_threshold_state_round_trip(tmp_path):
    at = AdaptiveThreshold(2, momentum=0.5)
    at.update_and_select(G3, O3, epoch=3, num_epochs=10)
    path = tmp_path / "sat.pt"
    torch.save(at.state_dict(), path)
    fresh = AdaptiveThreshold(2)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(fresh.tau, at.tau) and torch.equal(fresh.class_prob, at.class_prob)
    assert fresh.momentum == 0.5
    assert torch.equal(fresh.update_and_select(G3, O3, 4, 10), at.update_and_select(G3, O3, 4, 10))
    assert torch.equal(fresh.tau, at.tau)
    with pytest.raises(ValueError, match="class_prob"):
        AdaptiveThreshold(3).load_state_dict(at.state_dict())
