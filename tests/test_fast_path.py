"""The fast path computes what the plain fp32 path computes (issue #4): on the CPU, with the parts that run there.

channels_last, the fused SGD kernel and the GMM on the device must give the same division and the same losses as
the plain path to float tolerance; bf16 autocast the same division up to samples at the threshold and losses
within bf16 precision.
"""

from __future__ import annotations

import copy

import pytest
import torch

from noisyclr.config import load_config
from noisyclr.data.prepare import prepare_data
from noisyclr.engine import build_context, seed_everything
from noisyclr.methods import get_method
from tiny_runs import tiny_run

TINY = tiny_run(train_size=160, test_size=32, seed=1) + ["method.warmup_epochs=1", "train.epochs=3"]
PLAIN = ["train.precision=fp32", "train.channels_last=false", "train.fused_optimizer=false",
         "method.gmm_backend=sklearn"]
FAST_FP32 = ["train.channels_last=true", "train.fused_optimizer=true", "method.gmm_backend=torch"]


def build(preset: str, extra: list[str]):
    cfg = load_config(preset, TINY + extra)
    seed_everything(cfg.train.seed)
    ctx = build_context(cfg, prepare_data(cfg), torch.device("cpu"))
    return get_method(cfg.method.name)(cfg, ctx)


def warmed_pair(preset: str, fast: list[str]):
    """The plain method after one warm-up epoch, and the fast one holding the same weights and generator state."""
    plain = build(preset, PLAIN)
    plain.warmup(0, 0)
    plain.warmup(1, 0)
    quick = build(preset, fast)
    for a, b in zip(quick.nets, plain.nets):
        a.load_state_dict(b.state_dict())
    for oq, op in zip(quick.optimizers, plain.optimizers):
        # as a resume does: the plain (not fused, NCHW) state loaded, then this run's kernel and layouts re-applied
        oq.load_state_dict(copy.deepcopy(op.state_dict()))  # a copy: loading shares the tensors it is given
        quick.ctx.restore_optimizer(oq)
    quick.ctx.generator.set_state(plain.ctx.generator.get_state())
    return plain, quick


def fixed_batches(method, seed: int = 7):
    """A labeled and an unlabeled batch with the method's semi views, from a freshly seeded generator."""
    ctx = method.ctx
    g = torch.Generator().manual_seed(seed)
    views = ctx.views(method.semi_views)
    idx = torch.arange(len(ctx.train))
    return ctx.train.batch(idx[:16], views, g), ctx.train.batch(idx[16:32], views, g)


def semi_loss(method, xb, ub, prob, seed: int = 11) -> torch.Tensor:
    method.ctx.generator.manual_seed(seed)  # the same MixMatch λ and permutation on both paths
    return method.semi_loss(0, 1, xb, ub, prob.index_select(0, xb.indices), 1.5, 1)


@pytest.mark.parametrize("preset", ["dividemix-digits-sym50", "plremix-digits-sym50"])
def test_fp32_fast_path_gives_the_same_division_and_losses(preset):
    plain, quick = warmed_pair(preset, FAST_FP32)
    assert quick.ctx.channels_last and not plain.ctx.channels_last
    probs_plain = [plain.divide(k, 1) for k in (0, 1)]
    probs_quick = [quick.divide(k, 1) for k in (0, 1)]
    for a, b in zip(probs_plain, probs_quick):
        assert torch.allclose(a, b, atol=1e-4)
        assert torch.equal(plain.labeled_mask(a), quick.labeled_mask(b))  # the same labeled set
    if hasattr(plain, "init_prototypes"):
        plain.init_prototypes()
        quick.init_prototypes()
    xb, ub = fixed_batches(plain)
    xq, uq = fixed_batches(quick)
    la, lb = semi_loss(plain, xb, ub, probs_plain[1]), semi_loss(quick, xq, uq, probs_quick[1])
    assert torch.allclose(la, lb, rtol=1e-4, atol=1e-5), (float(la), float(lb))


def test_fused_sgd_step_equals_the_plain_step():
    plain, quick = warmed_pair("dividemix-digits-sym50", FAST_FP32)
    opt = quick.optimizers[0]
    assert opt.param_groups[0]["fused"] and not plain.optimizers[0].param_groups[0].get("fused")
    # the loaded NCHW momentum buffers took the channels_last layout of their parameters
    assert all(opt.state[p]["momentum_buffer"].stride() == p.stride() for p in opt.param_groups[0]["params"])
    assert any(p.dim() == 4 and not p.is_contiguous() for p in opt.param_groups[0]["params"])
    xb, ub = fixed_batches(plain)
    prob = plain.divide(1, 1)
    for method in (plain, quick):  # two steps: the second uses the momentum buffers
        for seed in (3, 4):
            loss = semi_loss(method, xb, ub, prob, seed)
            method.ctx.step(loss, method.optimizers[0])
    for a, b in zip(plain.nets[0].parameters(), quick.nets[0].parameters()):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert not torch.equal(list(plain.nets[0].parameters())[0], list(plain.nets[1].parameters())[0])


def test_bf16_autocast_keeps_the_division_up_to_threshold_ties():
    plain, quick = warmed_pair("dividemix-digits-sym50", FAST_FP32 + ["train.precision=bf16"])
    a, b = plain.divide(0, 1), quick.divide(0, 1)
    assert (a - b).abs().mean() < 0.02
    differ = plain.labeled_mask(a) != quick.labeled_mask(b)
    assert differ.float().mean() <= 0.05
    assert ((a[differ] - 0.5).abs() < 0.2).all()  # only samples near the threshold may change side
    xb, ub = fixed_batches(plain)
    la, lb = semi_loss(plain, xb, ub, a), semi_loss(quick, xb, ub, b)
    assert torch.allclose(la, lb, rtol=5e-2, atol=1e-2), (float(la), float(lb))
