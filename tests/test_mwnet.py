"""Meta-Weight-Net: the meta gradient against finite differences, the virtual step against an explicit copy, running
statistics untouched by the virtual step, the weighted loss, and short runs (keys, exact resume)."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from noisyclr.config import load_config
from noisyclr.engine import CHECKPOINT, run_training
from noisyclr.errors import UserError
from noisyclr.losses import cross_entropy, mean_absolute_error
from noisyclr.methods.mwnet import VNet, meta_gradient, virtual_meta_loss, weighted_loss
from tiny_runs import tiny_run

# the preset's noise is sym 50% already; tiny_run states it again
TINY = tiny_run(train_size=112) + ["train.epochs=2", "model.init=null", "dataset.mean=null", "dataset.std=null",
                                   "dataset.clean_holdout=16"]


# float64 per-sample losses (the library's compute in float32, too coarse for finite differences)
def ce64(logits, labels):
    return F.cross_entropy(logits, labels, reduction="none")


def mae64(logits, labels):
    return 2 * (1 - F.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1))


def gce64(logits, labels, q=0.66):
    return (1 - F.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1) ** q) / q


LOSSES = {"ce": ce64, "mae": mae64, "gce": gce64}


def _problem(seed=0, normalize=False, meta_loss="ce", loss="ce"):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    vnet = VNet(hidden=6).double()
    with torch.no_grad():  # move the ReLU kinks away from the inputs the test uses
        vnet.net[0].bias.add_(0.5)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 4, (8,))
    xm, ym = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 4, (6,))
    kwargs = dict(inner_lr=0.7, normalize=normalize, loss_fn=LOSSES[loss], meta_loss_fn=LOSSES[meta_loss])
    return net, vnet, (x, y, xm, ym), kwargs


@pytest.mark.parametrize("normalize, meta_loss, loss", [(False, "ce", "ce"), (True, "mae", "ce"), (False, "ce", "gce")])
def test_meta_gradient_matches_finite_differences(normalize, meta_loss, loss):
    net, vnet, data, kw = _problem(normalize=normalize, meta_loss=meta_loss, loss=loss)
    _, grads = meta_gradient(net, vnet, *data, **kw)
    eps = 1e-6
    for p, g in zip(vnet.parameters(), grads):
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps  # .data: an in-place edit outside autograd
            up = virtual_meta_loss(net, vnet, *data, **kw).item()
            flat[i] = old - eps
            down = virtual_meta_loss(net, vnet, *data, **kw).item()
            flat[i] = old
            fd = (up - down) / (2 * eps)
            assert gflat[i].item() == pytest.approx(fd, rel=1e-5, abs=1e-9)
    assert any(g.abs().sum() > 0 for g in grads)


def test_virtual_step_equals_an_explicit_sgd_step_on_a_copy():
    net, vnet, (x, y, xm, ym), kw = _problem(seed=1)
    copy_net = copy.deepcopy(net)
    losses = ce64(copy_net(x), y)
    with torch.no_grad():
        w = vnet(losses)
    weighted = (w * losses).sum() / len(losses)  # Ghosh & Lan: not normalised by the weights
    weighted.backward()
    with torch.no_grad():
        for p in copy_net.parameters():
            p -= 0.7 * p.grad
    expected = ce64(copy_net(xm), ym).mean()
    got = virtual_meta_loss(net, vnet, x, y, xm, ym, inner_lr=0.7, loss_fn=ce64, meta_loss_fn=ce64)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    before = [p.detach().clone() for p in net.parameters()]
    got.backward()
    assert all(torch.equal(a, p) for a, p in zip(before, net.parameters()))  # the real parameters never move


def test_virtual_step_leaves_running_statistics_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 4))
    vnet = VNet(8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(8, 3), torch.randint(0, 4, (8,))
    meta_gradient(net, vnet, x, y, torch.randn(8, 3), torch.randint(0, 4, (8,)), inner_lr=0.1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_float64_test_losses_are_the_library_losses():
    logits, labels = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(ce64(logits, labels).float(), cross_entropy(logits, labels), atol=1e-6)
    assert torch.allclose(mae64(logits, labels).float(), mean_absolute_error(logits, labels), atol=1e-6)


def test_weighted_loss_and_vnet():
    losses, w = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 0.5, 0.0, 0.5])
    assert weighted_loss(losses, w).item() == pytest.approx((1 + 1 + 0 + 2) / 4)
    assert weighted_loss(losses, w, normalize=True).item() == pytest.approx(4 / 2)
    assert weighted_loss(losses, torch.zeros(4), normalize=True).item() == 0.0
    v = VNet()(torch.rand(7))
    assert v.shape == (7,) and ((v > 0) & (v < 1)).all()
    assert sum(p.numel() for p in VNet().parameters()) == 100 + 100 + 100 + 1  # 1 -> 100 -> 1


def test_mwnet_run_logs_weights_and_resumes_exactly(tmp_path):
    cfg = load_config("mwnet-simclr-digits-sym50", TINY)
    full = run_training(cfg, tmp_path / "full")
    for row in full.metrics:
        for key in ("train_loss", "meta_loss", "weight_mean", "weight_clean_mean", "weight_noisy_mean", "clean_auc",
                    "val_acc", "test_acc", "lr"):
            assert key in row, key
        assert 0 < row["weight_mean"] < 1
    assert full.summary["test_acc_at_best_val"] is not None and full.summary["num_train"] == 112 - 16
    ckpt = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=True)["method"]
    assert len(ckpt["nets"]) == 2 and "net.0.weight" in ckpt["nets"][1]  # the VNet is checkpointed
    run_training(cfg, tmp_path / "part", stop_after_epoch=1)
    resumed = run_training(None, tmp_path / "part", resume=True)
    drop = ("epoch_time_s", "train_time_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(full.metrics)


def test_mwnet_options_and_errors(tmp_path):
    with pytest.raises(UserError, match="dataset.clean_holdout"):
        load_config("mwnet-simclr-digits-sym50", TINY + ["dataset.clean_holdout=0"])
    with pytest.raises(UserError, match="method.meta_loss' must be one of ce, mae"):
        load_config("mwnet-simclr-digits-sym50", TINY + ["method.meta_loss=gce"])
    # official MW-Net variants: the classifier's lr as inner lr, normalised weights, MAE meta loss
    official = ["method.inner_lr=null", "method.normalize_weights=true", "method.meta_loss=mae", "method.meta_batch_size=8"]
    cfg = load_config("mwnet-simclr-digits-sym50", TINY + ["train.epochs=1"] + official)
    result = run_training(cfg, tmp_path / "variants")
    assert result.summary["epochs"] == 1
