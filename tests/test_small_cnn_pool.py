"""The small CNN's fast 2x2 max-pool is F.max_pool2d bit for bit: values, gradients, double backward, training."""

import copy
import importlib

import pytest
import torch
import torch.nn.functional as F

from noisyclr.models import build_network
from noisyclr.models.small_cnn import max_pool2x2


def _batch(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(*shape, generator=g))
    x[:, :, :4, :4] = 0.25  # exact ties inside windows: the argmax rule decides where the gradient goes
    x[0, 0, 0, 1] = float("nan")
    return x


@pytest.mark.parametrize("shape", [(5, 3, 8, 8), (4, 7, 4, 4), (2, 2, 8, 6)])
def test_forward_and_backward_equal_max_pool2d(shape):
    x = _batch(shape)
    with torch.no_grad():
        assert torch.equal(max_pool2x2(x), F.max_pool2d(x, 2)) or torch.allclose(
            max_pool2x2(x), F.max_pool2d(x, 2), equal_nan=True, rtol=0, atol=0)
    g = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    grads = []
    for fn in (max_pool2x2, lambda t: F.max_pool2d(t, 2)):
        xg = x.clone().requires_grad_()
        out = fn(xg)
        out.backward(g)
        grads.append((out.detach(), xg.grad))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=0, atol=0, equal_nan=True)
    assert torch.equal(grads[0][1], grads[1][1])


def test_odd_sizes_fall_back_to_max_pool2d():
    x = torch.randn(2, 3, 7, 5)
    assert torch.equal(max_pool2x2(x), F.max_pool2d(x, 2))


def test_double_backward_matches_max_pool2d():
    x = torch.relu(torch.randn(3, 4, 8, 8))
    w = torch.randn(3, 4, 4, 4, requires_grad=True)
    results = []
    for fn in (max_pool2x2, lambda t: F.max_pool2d(t, 2)):
        xg = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad((fn(xg) * w).pow(2).sum(), [xg], create_graph=True)
        (gw,) = torch.autograd.grad(gx.sin().sum(), [w])
        results.append((gx.detach(), gw))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_training_steps_are_bit_identical_to_max_pool2d(monkeypatch):
    torch.manual_seed(0)
    fast = build_network("small_cnn", 10, in_channels=1, proj_dim=16)
    plain = copy.deepcopy(fast)
    x = torch.randn(32, 1, 8, 8)
    y = torch.randint(0, 10, (32,))

    def train(net):
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        for _ in range(3):
            logits, _, proj = net(x, heads=("logits", "proj"))
            loss = F.cross_entropy(logits, y) + proj.pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            return net(x)

    out_fast = train(fast)
    small = importlib.import_module("noisyclr.models.small_cnn")  # the package exports a function of that name
    monkeypatch.setattr(small, "max_pool2x2", lambda t: F.max_pool2d(t, 2))
    out_plain = train(plain)
    assert torch.equal(out_fast, out_plain)
    for a, b in zip(fast.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)
