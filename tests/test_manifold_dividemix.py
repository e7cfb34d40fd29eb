"""Manifold DivideMix: the SCE pieces by hand, the shared λ and permutation of MixEMatch, the OOD filter's schedule
and exclusion, the warm-up mask as published, a short run on an OOD proxy, exact resume including the OOD set."""

from __future__ import annotations

import math

import pytest
import torch

from noisyclr.config import load_config
from noisyclr.engine import CHECKPOINT, run_training
from noisyclr.errors import UserError
from noisyclr.loop import Step
from noisyclr.losses import soft_symmetric_cross_entropy, squared_error, symmetric_cross_entropy
from noisyclr.mixing import MixDraw
from noisyclr.neighbours import ood_removal_count
from noisyclr.tracking import read_metrics
from tiny_runs import assert_same_resumed_run, build_method

# 6 synthetic classes, 4 in distribution, 20% OOD slots from the other 2, then 20% sym noise
TINY = [
    "model.init=null",
    "dataset.name=synthetic",
    "dataset.options={num_classes: 6, image_size: 8, channels: 3, train_size: 192, test_size: 48, seed: 0}",
    "dataset.classes=[0,1,2,3]",
    "dataset.mean=[0.5,0.5,0.5]",
    "dataset.std=[0.25,0.25,0.25]",
    "train.batch_size=16",
    "train.device=cpu",
    "train.eval_batch_size=64",
    "model.width=8",
    "method.proj_dim=16",
    "train.epochs=4",
    "method.warmup_epochs=2",
    "method.interval=1",
    "log.progress=off",
]


def tiny(*extra):
    return load_config("manifold_dividemix-digits-ood20-sym20", TINY + list(extra))


# ------------------------------------------------------------------------------------------------------------
# losses


def test_symmetric_ce_of_a_hard_label_by_hand():
    z = torch.tensor([[math.log(3.0), 0.0]])  # p = (0.75, 0.25)
    expected = -math.log(0.75) + -math.log(1e-4) * 0.25  # CE + RCE = −log p_y − log(1e-4)(1 − p_y)
    assert float(symmetric_cross_entropy(z, torch.tensor([0]))) == pytest.approx(expected, rel=1e-6)


def test_soft_sce_applies_the_published_log_softmax_to_the_target():
    z = torch.tensor([[math.log(3.0), 0.0]])
    t = torch.tensor([[0.8, 0.2]])
    p = torch.tensor([0.75, 0.25])
    ce = -(0.8 * math.log(0.75) + 0.2 * math.log(0.25))
    log_t_sm = torch.log_softmax(t[0], 0)  # the seed's log-softmax of the target vector
    rce_published = float(-(p * log_t_sm).sum())
    rce_as_written = float(-(p * torch.log(t[0])).sum())
    assert float(soft_symmetric_cross_entropy(z, t)) == pytest.approx(ce + rce_published, rel=1e-6)
    assert float(soft_symmetric_cross_entropy(z, t, target_log="log_clamp")) == pytest.approx(ce + rce_as_written,
                                                                                              rel=1e-6)
    # a one-hot target with log_clamp is the hard-label SCE
    one_hot = torch.tensor([[1.0, 0.0]])
    assert torch.allclose(soft_symmetric_cross_entropy(z, one_hot, target_log="log_clamp"),
                          symmetric_cross_entropy(z, torch.tensor([0])))


def test_squared_error_is_elementwise():
    z = torch.tensor([[0.0, 0.0]])
    assert torch.allclose(squared_error(z, torch.tensor([[1.0, 0.0]])), torch.tensor([[0.25, 0.25]]))


def test_ood_schedule_of_the_seed():
    assert [ood_removal_count(50_000, d, 0.1, 0.01) for d in (0, 1, 28)] == [5000, 5500, 19000]


# ------------------------------------------------------------------------------------------------------------
# MixEMatch: one draw for images, pooled features, targets and masks


def test_one_draw_mixes_images_features_targets_and_masks(monkeypatch):
    method = build_method(tiny())
    ctx = method.ctx
    method.train_epoch(0)
    method.train_epoch(1)
    method.divide(2)
    labeled, unlabeled = method.split()
    views = method.semi_views
    xb = ctx.train.batch(labeled[:8], views, ctx.generator)
    ub = ctx.train.batch(unlabeled[:8], views, ctx.generator)

    draws, applied = [], []
    import noisyclr.methods.manifold_dividemix as mdm

    real_draw = mdm.draw_mix

    def spy(*args, **kwargs):
        draw = real_draw(*args, **kwargs)
        draws.append(draw)
        return draw

    original_apply = MixDraw.apply

    def spy_apply(self, t):
        applied.append((id(self), tuple(t.shape)))
        return original_apply(self, t)

    monkeypatch.setattr(mdm, "draw_mix", spy)
    monkeypatch.setattr(MixDraw, "apply", spy_apply)
    loss = method.semi_step(Step(0, 0, x=xb, u=ub), 2, 4)
    assert len(draws) == 1 and float(draws[0].lam) >= 0.5  # λ' = max(λ, 1 − λ)
    shapes = {shape for ident, shape in applied if ident == id(draws[0])}
    rows = 32
    # images (through the network's stage-0 mix), pooled features, targets, masks: all with the one draw
    assert (rows, 3, 8, 8) in shapes and (rows, 8 * 4) in shapes and (rows, 4) in shapes and (rows,) in shapes
    assert len(applied) == 4
    loss.backward()
    assert method.nets[0].projector[0].weight.grad is not None  # NT-Xent on the unlabeled projections


def test_ood_samples_are_in_neither_set_and_r_grows_per_division():
    method = build_method(tiny())
    method.train_epoch(0)
    n = len(method.ctx.train)
    assert int(method.ood.sum()) == ood_removal_count(n, 0, 0.1, 0.01)
    method.train_epoch(1)
    stats = method.train_epoch(2)  # the first division
    assert stats["division"] == 1 and stats["ood_removed"] == ood_removal_count(n, 1, 0.1, 0.01)
    labeled, unlabeled = method.split()
    assert not bool(method.ood[labeled].any()) and not bool(method.ood[unlabeled].any())
    assert len(labeled) + len(unlabeled) + int(method.ood.sum()) == n
    for key in ("ood_precision", "ood_recall", "ood_auc", "label_precision", "labeled_size"):
        assert key in stats


def test_warmup_ood_mask_rescales_as_published_or_excludes():
    method = build_method(tiny())
    ctx = method.ctx
    method.train_epoch(0)
    rows = torch.arange(16)
    method.ood[rows[:4]] = True
    method.ood[rows[4:]] = False
    gen_state = ctx.generator.get_state()
    b = ctx.train.batch(rows, method.warmup_views, ctx.generator)
    method.nets[0].eval()
    published = method.warmup_step(Step(0, 0, batch=b))
    with torch.no_grad():
        losses = symmetric_cross_entropy(method.forward(b["weak"]), b.labels)
    assert float(published.detach()) == pytest.approx(float(losses.mean()) * 12 / 16, rel=1e-5)
    method.mcfg.warmup_ood = "exclude"
    ctx.generator.set_state(gen_state)
    assert float(method.warmup_step(Step(0, 0, batch=b)).detach()) == pytest.approx(float(losses[4:].mean()), rel=1e-5)


def test_bn_frozen_keeps_running_statistics():
    method = build_method(tiny("train.epochs=1", "method.bn_frozen=true"))
    before = method.nets[0].backbone.block1[1].running_mean.clone()
    method.train_epoch(0)
    assert torch.equal(before, method.nets[0].backbone.block1[1].running_mean)
    thawed = build_method(tiny("train.epochs=1", "method.bn_frozen=false"))
    thawed.train_epoch(0)
    assert not torch.equal(before, thawed.nets[0].backbone.block1[1].running_mean)


def test_two_learning_rates():
    method = build_method(tiny("train.lr=0.2", "method.backbone_lr=0.002"))  # the seed's rates
    method.train_epoch(0)
    heads, backbone = method.optimizers[0].param_groups
    assert backbone["lr"] == pytest.approx(heads["lr"] * 0.002 / 0.2)
    assert {id(p) for p in backbone["params"]} == {id(p) for p in method.nets[0].backbone.parameters()}


# ------------------------------------------------------------------------------------------------------------
# runs


def test_short_run_reports_ood_detection_and_zero_clean_prob_for_flagged(tmp_path):
    run_training(tiny(), tmp_path)
    rows = read_metrics(tmp_path)
    assert [r["phase"] for r in rows] == ["warmup", "warmup", "semi", "semi"]
    assert "ood_precision" in rows[0] and "ood_precision" in rows[2] and "ood_precision" in rows[3]
    assert rows[3]["division"] == 2  # interval 1: re-divided at epoch 3
    import csv

    with open(tmp_path / "labels.csv") as handle:
        got = list(csv.DictReader(handle))
    with open(tmp_path / "train_labels.csv") as handle:
        truth = list(csv.DictReader(handle))
    assert len(got) == len(truth) and "is_ood" in truth[0]
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)["method"]["extra"]
    flagged = state["ood"].numpy()
    assert all(float(r["clean_prob"]) == 0.0 for r, f in zip(got, flagged) if f)


def test_resume_is_bit_identical_including_the_ood_set(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    run_training(tiny(), full)
    run_training(tiny(), part, stop_after_epoch=3)  # between divisions: the checkpoint holds the division and OOD set
    run_training(None, part, resume=True)
    assert_same_resumed_run(full, part, ("ood", "prob"))


def test_bad_numbers_are_one_line_errors():
    with pytest.raises(UserError, match="method.p_threshold"):
        load_config("manifold_dividemix-digits-ood20-sym20", ["method.p_threshold=2"])
    with pytest.raises(UserError, match="method.rampup"):
        load_config("manifold_dividemix-digits-ood20-sym20", ["method.rampup=fast"])
