"""BPT-PLR: the oversampling step plan, the balanced partition in training, one joint forward, both nets' prototype
updates, exact resume; the Animal-10N source; the VGG-19-BN backbone; the cosine eta_min."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisyclr.config import TrainConfig, load_config
from noisyclr.data.animal10n import CLASS_NAMES, MEAN, STD
from noisyclr.data.prepare import prepare_data
from noisyclr.data.sources import load_dataset
from noisyclr.engine import CHECKPOINT, build_context, run_training, seed_everything
from noisyclr.errors import UserError
from noisyclr.methods import get_method
from noisyclr.loop import PlannedStep, oversample_plan
from noisyclr.method_configs import BPTPLRConfig
from noisyclr.metrics import class_precision, class_recall, defined_mean
from noisyclr.models import build_network
from noisyclr.schedules import learning_rate
from noisyclr.selection import balanced_partition
from noisyclr.tracking import read_metrics
from tiny_runs import tiny_run

TINY = tiny_run() + ["train.epochs=2", "method.warmup_epochs=1", "method.proj_dim=16"]


def tiny(*extra):
    return load_config("bpt_plr-digits-sym50", TINY + list(extra))


def build_method(cfg):
    seed_everything(cfg.train.seed)
    ctx = build_context(cfg, prepare_data(cfg), torch.device("cpu"))
    return get_method(cfg.method.name)(cfg, ctx)


# ------------------------------------------------------------------------------------------------------------
# the oversampled epoch


def trained(plan):
    return [s for s in plan if not s.skipped]


def test_plan_budget_is_independent_of_the_labeled_size():
    # max_iters = (|L| + |U|) // B + 1 = 1000 // 64 + 1 = 16 training steps whatever |L| is
    for n_labeled in (64, 200, 500, 936):
        plan = oversample_plan(n_labeled, 1000 - n_labeled, 64)
        assert len(trained(plan)) == 16
        assert all(s.labeled_size == 64 and s.unlabeled_size == 64 for s in plan)  # drop_last: full batches


def test_plan_reiterates_the_labeled_loader_and_restarts_batch_idx():
    # |L| = 200, B = 64, drop_last: 3 labeled batches per pass; 8 steps = passes 0,0,0,1,1,1,2,2
    plan = oversample_plan(200, 300, 64)
    assert [(s.labeled_pass, s.batch_idx) for s in plan] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    # a labeled set of one batch: every step is a new pass with batch_idx 0 (ramp-up t = epoch + 0)
    plan = oversample_plan(100, 400, 64)
    assert len(plan) == 8 and {s.batch_idx for s in plan} == {0} and [s.labeled_pass for s in plan] == list(range(8))


def test_plan_skips_size_one_batches_without_counting_them():
    # no drop_last: labeled batches [64, 1], unlabeled [64, 64, 2] cycling; max_iters = 195 // 64 + 1 = 4
    plan = oversample_plan(65, 130, 64, drop_last_labeled=False, drop_last_unlabeled=False)
    assert plan == [
        PlannedStep(0, 0, 64, 64), PlannedStep(0, 1, 1, 64),   # skipped: labeled batch of 1
        PlannedStep(1, 0, 64, 2), PlannedStep(1, 1, 1, 64),    # skipped
        PlannedStep(2, 0, 64, 64), PlannedStep(2, 1, 1, 2),    # skipped
        PlannedStep(3, 0, 64, 64),
    ]
    assert len(trained(plan)) == 4 and sum(s.skipped for s in plan) == 3
    # an unlabeled batch of 1 is drawn (the unlabeled loader advances) and skipped too
    plan = oversample_plan(128, 65, 64, drop_last_labeled=False, drop_last_unlabeled=False)
    assert [(s.labeled_size, s.unlabeled_size) for s in plan] == [(64, 64), (64, 1)] * 3 + [(64, 64)]
    assert len(trained(plan)) == 4


def test_plan_is_empty_when_nothing_can_train():
    assert oversample_plan(1, 500, 64, drop_last_labeled=False) == []
    assert oversample_plan(50, 500, 64) == []  # drop_last and |L| < B: the reference would loop for ever
    assert oversample_plan(500, 1, 64, drop_last_unlabeled=False) == []
    with pytest.raises(ValueError):
        oversample_plan(10, 10, 0)


# ------------------------------------------------------------------------------------------------------------
# training


def test_config_defaults_follow_the_reference():
    m = BPTPLRConfig()
    assert (m.contrastive, m.warmup_contrastive, m.kappa_milestones, m.kappa) == ("plr", "none", [40], 3)
    assert (m.adaptive_selection, m.prototype_source, m.lambda_c, m.plr_temperature) == (False, "peer", 1.0, 1.0)
    assert (m.lambda_u, m.drop_last, m.balanced, m.oversample) == (0.0, True, True, True)


def test_class_precision():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    selected = torch.tensor([True, True, False, True, False, False])
    clean = torch.tensor([True, False, True, True, True, True])
    out = class_precision(selected, labels, clean, 3)
    assert out == [0.5, 1.0, None] and defined_mean(out) == 0.75


def test_class_recall_counts_clean_samples_of_each_given_label():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    selected = torch.tensor([True, True, False, True, False, False, True])
    clean = torch.tensor([True, False, True, True, True, False, False])
    # class 0: clean {0, 2}, selected clean {0} -> 1/2; class 1: {3, 4} -> {3} -> 1/2; class 2: no clean sample
    assert class_recall(selected, labels, clean, 3) == [0.5, 0.5, None]


def test_two_epochs_balanced_oversampled_and_both_prototypes_move():
    method = build_method(tiny())
    ctx = method.ctx
    assert tuple(method.warmup_views) == ("weak",)  # no contrastive warm-up: no strong views computed
    method.train_epoch(0)
    before = [p.clone() for p in method.prototypes]

    steps = {0: 0, 1: 0}
    plain_step = ctx.step

    def counting_step(loss, opt):
        steps[method.optimizers.index(opt)] += 1
        plain_step(loss, opt)

    ctx.step = counting_step
    stats = method.train_epoch(1)

    # the labeled set of net k is the balanced partition of its peer's clean probability
    labels, n, bs = ctx.train.labels, len(ctx.train), ctx.cfg.train.batch_size
    for k in (0, 1):
        prob = method.last_division[1 - k]
        labeled = balanced_partition(prob, labels, ctx.num_classes, threshold=0.5)
        n_l = int(labeled.sum())
        quota = int((prob > 0.5).sum()) // ctx.num_classes
        sizes = torch.bincount(labels, minlength=ctx.num_classes).clamp_max(quota)
        assert torch.equal(torch.bincount(labels[labeled], minlength=ctx.num_classes), sizes)  # same quota per class
        plan = oversample_plan(n_l, n - n_l, bs, drop_last_labeled=n_l >= bs, drop_last_unlabeled=n - n_l >= bs)
        assert steps[k] == len(trained(plan)) == n // bs + 1  # oversampled: N // B + 1, not |L| // B

    # per-class precision before and after balancing, and the headline keys
    for key in ("class_precision_threshold", "class_precision_balanced"):
        assert isinstance(stats[key], list) and len(stats[key]) == 4
        assert all(v is None or 0.0 <= v <= 1.0 for v in stats[key])
        assert 0.0 <= stats[f"{key}_mean"] <= 1.0
        for k in (1, 2):
            assert f"{key}_mean_net{k}" in stats
    assert stats["labeled_size"] == int(balanced_partition(
        (method.last_division[0] + method.last_division[1]) / 2, labels, 4, threshold=0.5).sum())
    assert "labeled_size_threshold" in stats and "label_precision_threshold" in stats

    # both nets' prototypes moved (the reference never updates net2's after warm-up) and stay unit rows
    for k in (0, 1):
        assert not torch.equal(before[k], method.prototypes[k]), f"net{k + 1} prototypes unchanged"
        assert torch.allclose(method.prototypes[k].norm(dim=1), torch.ones(4), atol=1e-5)


def test_one_joint_forward_per_step():
    """The semi step runs the trained net's backbone 4 times on B rows (targets) and ONCE on 8B rows."""
    method = build_method(tiny())
    method.train_epoch(0)
    method.train_epoch(1)  # fills the stored eval outputs (info) used by the PLR mask
    ctx = method.ctx
    sizes = []
    hook = method.nets[0].register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0]))
    views = ctx.views(method.semi_views)
    xb = ctx.train.batch(torch.arange(0, 16), views, ctx.generator)
    ub = ctx.train.batch(torch.arange(16, 32), views, ctx.generator)
    loss = method.semi_loss(0, 1, xb, ub, torch.full((16,), 0.5), 1.5, 1)
    hook.remove()
    assert sizes == [16, 16, 16, 16, 8 * 16]
    assert torch.isfinite(loss)
    loss.backward()
    assert method.nets[0].projector[0].weight.grad is not None  # the PLR term reaches the projector


def test_prototypes_initialised_after_every_warmup_epoch():
    method = build_method(tiny("method.warmup_epochs=2", "train.epochs=3"))
    method.train_epoch(0)  # not the last warm-up epoch: PLReMix would still have no prototypes
    assert all(p is not None for p in method.prototypes)


def test_resume_is_bit_identical(tmp_path):
    args = ["train.epochs=3", "method.loss_average_last=2", "method.gmm_backend=torch"]
    full, part = tmp_path / "full", tmp_path / "part"
    run_training(tiny(*args), full)
    run_training(tiny(*args), part, stop_after_epoch=2)  # stop after the first semi-supervised epoch
    run_training(None, part, resume=True)
    drop = ("epoch_time_s", "train_time_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]
    rows = read_metrics(full)
    assert [r["phase"] for r in rows] == ["warmup", "semi", "semi"]
    assert len(rows[2]["class_precision_balanced"]) == 4
    assert strip(read_metrics(part)) == strip(rows)
    a = torch.load(full / CHECKPOINT, weights_only=True)["method"]
    b = torch.load(part / CHECKPOINT, weights_only=True)["method"]
    for net_a, net_b in zip(a["nets"], b["nets"]):
        for key in net_a:
            assert torch.equal(net_a[key], net_b[key]), key
    assert len(a["extra"]["prototypes"]) == 2
    for pa, pb in zip(a["extra"]["prototypes"], b["extra"]["prototypes"]):
        assert torch.equal(pa, pb)
    assert (full / "labels.csv").read_text() == (part / "labels.csv").read_text()


# ------------------------------------------------------------------------------------------------------------
# cosine eta_min


def test_cosine_eta_min():
    cfg = TrainConfig(epochs=400, lr=0.02, schedule="cosine", cosine_tmax=380, eta_min=2e-4)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.02)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 380, 2e-4)
    for epoch in range(381):  # torch's (recursive) schedule, stepped once per epoch as the reference
        assert learning_rate(cfg, epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-12)
        opt.step()
        ref.step()
    assert learning_rate(cfg, 399) == pytest.approx(2e-4)  # held at eta_min after T (torch would rise again)
    plain = TrainConfig(epochs=10, lr=0.1, schedule="cosine")
    assert learning_rate(plain, 3) == 0.1 * 0.5 * (1.0 + math.cos(math.pi * 3 / 10))  # eta_min 0: unchanged
    with pytest.raises(UserError, match="eta_min"):
        load_config("bpt_plr-digits-sym50", ["train.eta_min=-1"])


# ------------------------------------------------------------------------------------------------------------
# Animal-10N


def write_image(path: Path, value: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size, 3), value, np.uint8)
    Image.fromarray(img).save(path)


@pytest.fixture
def animal_root(tmp_path) -> Path:
    root = tmp_path / "Animal-10N"
    # written out of order: the listing must come back sorted by name; PNG keeps the pixels exact
    for name, value in [("7_00002.png", 70), ("0_00009.png", 10), ("3_00001.png", 30), ("0_00003.png", 5)]:
        write_image(root / "training" / name, value)
    write_image(root / "training" / "9_00004.jpg", 200)  # JPEG works too
    (root / "training" / "README.txt").write_text("not an image")
    (root / "training" / ".hidden.png").write_text("hidden")
    for name, value in [("5_00001.png", 50), ("2_00002.png", 20)]:
        write_image(root / "testing" / name, value)
    return root


def test_animal10n_layout(animal_root, tmp_path):
    cache = tmp_path / "cache"
    splits = load_dataset("animal10n", str(animal_root), cache_dir=str(cache))
    train, test = splits.train, splits.test
    assert train.paths == ["training/0_00003.png", "training/0_00009.png", "training/3_00001.png",
                           "training/7_00002.png", "training/9_00004.jpg"]
    assert train.labels.tolist() == [0, 0, 3, 7, 9]
    assert train.images[:4, 0, 0, 0].tolist() == [5, 10, 30, 70]
    assert train.images.shape == (5, 8, 8, 3)
    assert train.true_labels is None  # the training labels are themselves noisy
    assert test.paths == ["testing/2_00002.png", "testing/5_00001.png"]
    assert test.labels.tolist() == [2, 5] and test.true_labels.tolist() == [2, 5]
    assert train.class_names == CLASS_NAMES and len(CLASS_NAMES) == 10 and CLASS_NAMES[9] == "guinea pig"
    assert (splits.mean, splits.std) == (MEAN, STD) == ((0.6959, 0.6537, 0.6371), (0.3113, 0.3192, 0.3214))
    assert "data_mean" in splits.info
    assert len(list(cache.glob("animal10n-*.npz"))) == 1  # decoded once, cached by the folder helpers
    # the preset wires the source: no clean training label, the Clothing1M constants
    cfg = load_config("bpt_plr-animal10n", [f"dataset.root={animal_root}", f"dataset.cache_dir={cache}", "train.device=cpu"])
    data = prepare_data(cfg)
    assert data.train.true_labels is None and data.mean == MEAN and data.actual_noise_rate is None


def test_animal10n_errors(animal_root, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("animal10n", str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "c"))
    write_image(animal_root / "training" / "x_00005.png", 1)
    with pytest.raises(UserError, match=r"training/x_00005\.png does not start with its label digit") as err:
        load_dataset("animal10n", str(animal_root), cache_dir=str(tmp_path / "c"))
    assert "\n" not in str(err.value)
    (animal_root / "training" / "x_00005.png").unlink()
    for child in (animal_root / "testing").iterdir():
        child.unlink()
    (animal_root / "testing").rmdir()
    with pytest.raises(UserError, match="no testing/ folder"):
        load_dataset("animal10n", str(animal_root), cache_dir=str(tmp_path / "c"))


# ------------------------------------------------------------------------------------------------------------
# VGG-19-BN


def _vgg19_bn_feature_params() -> int:
    """torchvision cfg 'E' with BN: conv 3x3 + bias, BN weight + bias, per layer."""
    total, cin = 0, 3
    for cout in [64, 64, 128, 128] + [256] * 4 + [512] * 8:
        total += 9 * cin * cout + cout + 2 * cout
        cin = cout
    return total


def test_vgg19_bn_features_are_25088_on_64x64():
    net = build_network("vgg19_bn", 10, proj_dim=128, proj_hidden=32)  # NOT the 629M 25088-wide projector
    assert net.feat_dim == 512 * 7 * 7 == 25088
    backbone_params = sum(p.numel() for p in net.backbone.parameters())
    # = torchvision vgg19_bn (143,678,248) minus its 25088-4096-4096-1000 classifier (123,642,856)
    assert backbone_params == _vgg19_bn_feature_params() == 20_035_392
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.backbone.modules()) == 16
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.backbone.modules()) == 5
    net.eval()
    with torch.no_grad():
        logits, feats, proj = net(torch.randn(2, 3, 64, 64), heads=("logits", "features", "proj"))
    assert feats.shape == (2, 25088) and logits.shape == (2, 10) and proj.shape == (2, 128)
    small = build_network("vgg19_bn", 4, width=8)
    assert small.feat_dim == 64 * 49 and small(torch.randn(2, 3, 32, 32)).shape == (2, 4)


@pytest.mark.parametrize("preset", ["plremix-digits-sym50", "bpt_plr-digits-sym50"])
def test_negative_contrastive_weight_is_refused_by_both_plr_methods(preset):
    with pytest.raises(UserError, match="lambda_c"):
        load_config(preset, ["method.lambda_c=-1"])
