"""LARS (trust ratio, equivalence with simclr-pytorch's wrapper), parameter groups, model.init and the clean holdout."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from noisyclr.config import load_config
from noisyclr.data.prepare import prepare_data, split_clean_holdout
from noisyclr.data.table import ImageTable
from noisyclr.engine import CHECKPOINT, run_training
from noisyclr.errors import UserError
from noisyclr.models import build_network
from noisyclr.models.init import encoder_state_dict, load_encoder, read_encoder
from noisyclr.optim import LARS, decay_groups, norm_parameter_ids, trust_ratio

TINY = [
    "dataset.name=synthetic",
    "dataset.options={num_classes: 4, image_size: 8, channels: 3, train_size: 96, test_size: 48, seed: 0}",
    "train.batch_size=16",
    "train.device=cpu",
    "train.eval_batch_size=64",
    "model.backbone=small_cnn",
    "model.width=8",
]


# ------------------------------------------------------------------------------------------------------------------
# LARS


def _step(param, grad, **kw):
    p = nn.Parameter(torch.tensor(param, dtype=torch.float64))
    opt = LARS([p], **kw)
    p.grad = torch.tensor(grad, dtype=torch.float64)
    opt.step()
    return p.detach()


def test_lars_trust_ratio_hand_values():
    # w = (3, 4), ‖w‖ = 5; g = (0, 2), ‖g‖ = 2; η = 0.001: ratio 0.0025, update 0.0025·g = (0, 0.005)
    assert trust_ratio(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 2.0]), 0.001).item() == pytest.approx(0.0025, rel=1e-5)
    out = _step([3.0, 4.0], [0.0, 2.0], lr=1.0, momentum=0.0)
    assert torch.allclose(out, torch.tensor([3.0, 3.995], dtype=torch.float64))
    # with weight decay 0.1 the ratio uses d = g + λw = (0.3, 2.4), ‖d‖ = √5.85
    ratio = 0.001 * 5 / math.sqrt(5.85)
    out = _step([3.0, 4.0], [0.0, 2.0], lr=2.0, momentum=0.0, weight_decay=0.1)
    assert torch.allclose(out, torch.tensor([3.0 - 2 * ratio * 0.3, 4.0 - 2 * ratio * 2.4], dtype=torch.float64))
    # a zero weight or a zero update leaves the ratio at 1 (plain SGD)
    assert trust_ratio(torch.zeros(3), torch.ones(3), 0.001).item() == 1.0
    assert trust_ratio(torch.ones(3), torch.zeros(3), 0.001).item() == 1.0
    assert torch.allclose(_step([0.0, 0.0], [1.0, -1.0], lr=0.5, momentum=0.0), torch.tensor([-0.5, 0.5], dtype=torch.float64))


def test_lars_excluded_group_is_plain_sgd_and_momentum_matches_torch():
    w = nn.Parameter(torch.tensor([1.0, -2.0]))
    b = nn.Parameter(torch.tensor([0.5]))
    groups = [{"params": [w], "weight_decay": 0.0, "lars_adapt": False}, {"params": [b], "lars_adapt": False}]
    opt = LARS(groups, lr=0.1, momentum=0.9)
    ref_w, ref_b = nn.Parameter(w.detach().clone()), nn.Parameter(b.detach().clone())
    ref = torch.optim.SGD([ref_w, ref_b], lr=0.1, momentum=0.9)
    for k in range(3):
        for p in (w, ref_w):
            p.grad = torch.tensor([0.3 * (k + 1), -0.1])
        for p in (b, ref_b):
            p.grad = torch.tensor([0.2])
        opt.step()
        ref.step()
    assert torch.allclose(w, ref_w) and torch.allclose(b, ref_b)


def _simclr_pytorch_lars_step(optimizer, trust=0.001):
    """simclr-pytorch ``utils/lars_optimizer.py`` semantics, written out: scale the gradients, SGD without decay."""
    with torch.no_grad():
        decays = []
        for group in optimizer.param_groups:
            decays.append(group["weight_decay"])
            wd, group["weight_decay"] = group["weight_decay"], 0
            for p in group["params"]:
                if p.grad is None:
                    continue
                if wd != 0:
                    p.grad += wd * p
                pn, gn = torch.norm(p), torch.norm(p.grad)
                if pn != 0 and gn != 0 and group["layer_adaptation"]:
                    p.grad *= trust * pn / gn
    optimizer.step()
    for group, wd in zip(optimizer.param_groups, decays):
        group["weight_decay"] = wd


def test_lars_matches_the_reference_wrapper_over_steps():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    ref = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    ref.load_state_dict(net.state_dict())
    groups = decay_groups(net.parameters(), weight_decay=1e-2, no_decay_ids=norm_parameter_ids(net), exclude_1d=True)
    assert [len(g["params"]) for g in groups] == [2, 4]  # two weight matrices; 2 biases + BN weight/bias excluded
    opt = LARS(groups, lr=0.5, momentum=0.9)
    ref_groups = [
        {"params": [p for n, p in ref.named_parameters() if p.ndim > 1], "weight_decay": 1e-2, "layer_adaptation": True},
        {"params": [p for n, p in ref.named_parameters() if p.ndim <= 1], "weight_decay": 0.0, "layer_adaptation": False},
    ]
    ref_opt = torch.optim.SGD(ref_groups, lr=0.5, momentum=0.9)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for _ in range(4):
        for model, o in ((net, opt), (ref, ref_opt)):
            o.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        _simclr_pytorch_lars_step(ref_opt)
    for a, b in zip(net.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_context_optimizer_groups(tmp_path):
    from noisyclr.engine import build_context, seed_everything
    from noisyclr.data.prepare import prepare_data as prep

    def ctx_for(*extra):
        cfg = load_config("standard-ce-digits-sym50", TINY + ["model.backbone=resnet18"] + list(extra))
        seed_everything(0)
        ctx = build_context(cfg, prep(cfg), torch.device("cpu"))
        return ctx, ctx.build_network()

    ctx, net = ctx_for()
    opt = ctx.sgd(net.parameters())  # the defaults: exactly plain SGD, one group
    assert isinstance(opt, torch.optim.SGD) and len(opt.param_groups) == 1
    ctx, net = ctx_for("train.no_decay_bn=true", "train.weight_decay=0.0001")
    opt = ctx.sgd(net.parameters())
    names = {id(p): n for n, p in net.named_parameters()}
    decayed, free = ([names[id(p)] for p in g["params"]] for g in opt.param_groups)
    assert opt.param_groups[0]["weight_decay"] == 1e-4 and opt.param_groups[1]["weight_decay"] == 0.0
    # every BN is excluded, including the shortcut BN (named "shortcut.1", which a name rule "bn" would miss)
    assert any("shortcut.1" in n for n in free) and all("bn" in n or "shortcut.1" in n for n in free)
    assert "classifier.bias" in decayed and "classifier.weight" in decayed
    ctx, net = ctx_for("train.optimizer=lars")
    opt = ctx.optimizer(net)
    names = {id(p): n for n, p in net.named_parameters()}
    adapted, plain = ([names[id(p)] for p in g["params"]] for g in opt.param_groups)
    assert isinstance(opt, LARS) and opt.param_groups[0]["lars_adapt"] and not opt.param_groups[1]["lars_adapt"]
    # LARS (SimCLR): biases and norm parameters get neither weight decay nor the trust ratio
    assert "classifier.bias" in plain and "classifier.weight" in adapted and "backbone.bn1.weight" in plain
    assert all(not n.endswith("bias") for n in adapted) and opt.param_groups[1]["weight_decay"] == 0.0


# ------------------------------------------------------------------------------------------------------------------
# model.init


def _net(width=8, channels=3, proj=None):
    torch.manual_seed(1)
    return build_network("small_cnn", 4, in_channels=channels, width=width, proj_dim=proj)


def test_load_encoder_copies_backbone_zero_inits_head_and_keeps_projector(tmp_path):
    src = _net(proj=16)
    torch.save(encoder_state_dict(src), tmp_path / "encoder.pt")
    dst = build_network("small_cnn", 4, width=8, proj_dim=16)
    proj_before = {k: v.clone() for k, v in dst.projector.state_dict().items()}
    info = load_encoder(dst, tmp_path / "encoder.pt")
    assert info["tensors"] == len(src.backbone.state_dict())
    for k, v in src.backbone.state_dict().items():
        assert torch.equal(dst.backbone.state_dict()[k], v), k
    assert torch.count_nonzero(dst.classifier.weight) == 0 and torch.count_nonzero(dst.classifier.bias) == 0
    for k, v in dst.projector.state_dict().items():  # the projection head is not loaded
        assert torch.equal(v, proj_before[k])
    # the file is a plain weights-only state dict
    assert set(torch.load(tmp_path / "encoder.pt", weights_only=True)) == set(src.backbone.state_dict())


def test_read_encoder_accepts_networks_wrappers_and_run_folders(tmp_path):
    src = _net(proj=16)
    full = {f"module.{k}": v for k, v in src.state_dict().items()}  # a DataParallel-style whole network
    torch.save(full, tmp_path / "whole.pt")
    assert set(read_encoder(tmp_path / "whole.pt")) == set(src.backbone.state_dict())
    run = tmp_path / "run"
    run_training(load_config("standard-ce-digits-sym50", TINY + ["train.epochs=1"]), run)
    state = read_encoder(run)  # a run folder without encoder.pt: its checkpoint's first network
    ckpt = torch.load(run / CHECKPOINT, weights_only=True)["method"]["nets"][0]
    assert set(state) == {k[len("backbone."):] for k in ckpt if k.startswith("backbone.")}


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: _net(width=4), "shape mismatch"),
        (lambda: _net(channels=1), "takes 1-channel images but this data has 3 channels"),
        (lambda: build_network("resnet18", 4, width=8), "missing key"),
    ],
)
def test_mismatch_is_one_clear_user_error(tmp_path, make, needle):
    torch.save(encoder_state_dict(make()), tmp_path / "encoder.pt")
    with pytest.raises(UserError) as info:
        load_encoder(_net(), tmp_path / "encoder.pt", backbone="small_cnn", width=8)
    msg = str(info.value)
    assert "\n" not in msg and "does not fit model.backbone=small_cnn" in msg and needle in msg


def test_init_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist.*noisyclr pretrain"):
        load_encoder(_net(), tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        load_encoder(_net(), tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "ints.pt")
    with pytest.raises(UserError, match="not a state dict of tensors"):
        load_encoder(_net(), tmp_path / "ints.pt")
    # an encoder pretrained without normalisation refuses a normalised fine-tuning run
    torch.save(encoder_state_dict(_net()), tmp_path / "encoder.pt")
    (tmp_path / "model_card.json").write_text('{"input": {"normalisation": "none"}}')
    with pytest.raises(UserError, match=r"dataset.mean=\[0,0,0\] dataset.std=\[1,1,1\]"):
        load_encoder(_net(), tmp_path / "encoder.pt", mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    load_encoder(_net(), tmp_path / "encoder.pt", mean=(0, 0, 0), std=(1, 1, 1))


def test_init_changes_the_starting_accuracy(tmp_path):
    """An encoder that has learned the classes: after one fine-tuning epoch with a tiny lr only the initialised
    network is already accurate; before training its zero head predicts one class for everything."""
    hard = ["dataset.options={num_classes: 6, image_size: 8, channels: 3, train_size: 192, test_size: 96, seed: 3}"]
    src_cfg = load_config("standard-ce-digits-sym50", TINY + hard + ["noise.kind=none", "train.epochs=4", "train.lr=0.05"])
    src = run_training(src_cfg, tmp_path / "src")
    assert src.summary["test_acc_last"] > 0.8
    slow = TINY + hard + ["noise.kind=none", "train.epochs=1", "train.lr=0.002", "method.track_memorisation=false"]
    with_init = run_training(load_config("standard-ce-digits-sym50", slow + [f"model.init={tmp_path / 'src'}"]), tmp_path / "a")
    without = run_training(load_config("standard-ce-digits-sym50", slow), tmp_path / "b")
    assert with_init.summary["test_acc_last"] > without.summary["test_acc_last"] + 0.2
    # the initialised network before any step: backbone = encoder, zero logits
    from noisyclr.engine import build_context, seed_everything

    cfg = load_config("standard-ce-digits-sym50", slow + [f"model.init={tmp_path / 'src'}"])
    seed_everything(0)
    ctx = build_context(cfg, prepare_data(cfg), torch.device("cpu"))
    net = ctx.build_network()
    (logits,) = ctx.eval_logits([net], ctx.test)
    assert torch.count_nonzero(logits) == 0


# ------------------------------------------------------------------------------------------------------------------
# clean held-out split


def test_clean_holdout_split_is_stratified_clean_and_keeps_the_other_labels():
    true = np.repeat(np.arange(4), 25)
    noisy = true.copy()
    noisy[::3] = (noisy[::3] + 1) % 4
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)  # pixel = row index
    table = ImageTable(images, noisy, true, ["a", "b", "c", "d"])
    rest, held = split_clean_holdout(table, 20, seed=0)
    assert len(held) == 20 and len(rest) == 80
    assert np.array_equal(held.labels, held.true_labels) and np.bincount(held.labels).tolist() == [5, 5, 5, 5]
    held_idx, rest_idx = held.images.ravel().astype(int), rest.images.ravel().astype(int)
    assert sorted(held_idx.tolist() + rest_idx.tolist()) == list(range(100))
    assert np.all(np.diff(rest_idx) > 0) and np.all(np.diff(held_idx) > 0)  # dataset order kept
    assert np.array_equal(rest.labels, noisy[rest_idx]) and np.array_equal(held.labels, true[held_idx])
    assert np.array_equal(split_clean_holdout(table, 20, seed=0)[1].images, held.images)  # seeded
    with pytest.raises(UserError, match="clean labels"):
        split_clean_holdout(ImageTable(table.images, noisy, None, table.class_names), 10, 0)
    with pytest.raises(UserError, match="between 1 and"):
        split_clean_holdout(table, 100, 0)


def test_prepare_data_with_clean_holdout_and_val_acc(tmp_path):
    cfg = load_config("standard-ce-digits-sym50", TINY + ["noise.kind=sym", "noise.rate=0.5", "dataset.clean_holdout=16"])
    base = load_config("standard-ce-digits-sym50", TINY + ["noise.kind=sym", "noise.rate=0.5"])
    data, full = prepare_data(cfg), prepare_data(base)
    assert len(data.train) == 80 and len(data.holdout) == 16
    assert np.array_equal(data.holdout.labels, data.holdout.true_labels)
    # the held-out rows are the only change: the rest keeps the labels of the run without a holdout
    pairs = {(img.tobytes(), int(lab)) for img, lab in zip(full.train.images, full.train.labels)}
    assert all((img.tobytes(), int(lab)) in pairs for img, lab in zip(data.train.images, data.train.labels))
    cfg = load_config("standard-ce-digits-sym50", TINY + ["dataset.clean_holdout=16", "train.epochs=2"])
    result = run_training(cfg, tmp_path / "r")
    assert all("val_acc" in row for row in result.metrics)
    assert result.summary["test_acc_at_best_val"] in [row["test_acc"] for row in result.metrics]
