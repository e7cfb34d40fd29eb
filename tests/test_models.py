"""Backbones and the Network wrapper: architecture sizes, shapes, consistency, and that they can learn."""

import pytest
import torch
import torch.nn.functional as F

from noisyclr.errors import UserError
from noisyclr.models import BACKBONES, Network, build_network

ALL = ["preact_resnet18", "resnet18", "resnet34", "resnet50", "small_cnn"]


def _preact_block_params(cin: int, cout: int) -> int:
    """bn1 (2·cin) + conv1 3×3 + bn2 (2·cout) + conv2 3×3 + 1×1 shortcut (no BN) when the shape changes."""
    shortcut = cin * cout if cin != cout else 0
    return 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout + shortcut


def test_preact_resnet18_parameter_count_matches_reference():
    num_classes = 10
    expected = 9 * 3 * 64 + 2 * 64  # stem conv + stem BN
    cin = 64
    for cout in (64, 128, 256, 512):
        expected += _preact_block_params(cin, cout) + _preact_block_params(cout, cout)
        cin = cout
    expected += 512 * num_classes + num_classes  # linear
    net = build_network("preact_resnet18", num_classes)
    assert expected == 11_171_274
    assert sum(p.numel() for p in net.parameters()) == expected


def test_preact_resnet18_structure_follows_reference():
    backbone = build_network("preact_resnet18", 10).backbone
    # Stem BN exists; identity-shape blocks have an empty shortcut; projection shortcuts are a single 1×1 conv.
    assert backbone.bn1.num_features == 64
    assert len(backbone.layer1[0].shortcut) == 0
    sc = backbone.layer2[0].shortcut
    assert len(sc) == 1 and isinstance(sc[0], torch.nn.Conv2d) and sc[0].kernel_size == (1, 1)
    assert sc[0].stride == (2, 2) and sc[0].bias is None


@pytest.mark.parametrize("size", [32, 8])
def test_preact_resnet18_shapes(size):
    net = build_network("preact_resnet18", 10).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits, feats, proj = net.forward_all(x)
    assert logits.shape == (2, 10) and feats.shape == (2, 512) and proj is None


def test_preact_pooling_equals_avg_pool4_on_32x32():
    backbone = build_network("preact_resnet18", 10).backbone.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = F.relu(backbone.bn1(backbone.conv1(x)))
        out = backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(out))))
        reference = F.avg_pool2d(out, 4).flatten(1)
        torch.testing.assert_close(backbone(x), reference)


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_resnet_feature_dims(name, dim):
    net = build_network(name, 7).eval()
    with torch.no_grad():
        logits, feats, _ = net.forward_all(torch.randn(2, 3, 8, 8))
    assert net.feat_dim == dim and feats.shape == (2, dim) and logits.shape == (2, 7)


@pytest.mark.parametrize("size", [8, 32])
def test_small_cnn_shapes(size):
    net = build_network("small_cnn", 10, in_channels=1).eval()
    with torch.no_grad():
        logits, feats, _ = net.forward_all(torch.randn(3, 1, size, size))
    assert logits.shape == (3, 10) and feats.shape == (3, 128)
    assert build_network("small_cnn", 10, width=16).feat_dim == 64


def test_forward_all_consistent_and_projector():
    torch.manual_seed(0)
    net = build_network("small_cnn", 5, proj_dim=16, proj_hidden=32).eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        logits, feats, proj = net.forward_all(x)
        torch.testing.assert_close(logits, net(x), rtol=0, atol=0)
        torch.testing.assert_close(feats, net.forward_features(x), rtol=0, atol=0)
        torch.testing.assert_close(proj, net.project(feats), rtol=0, atol=0)
    assert proj.shape == (4, 16)
    assert net.projector[0].out_features == 32
    assert build_network("small_cnn", 5, proj_dim=8).projector[0].out_features == 128  # hidden = feat_dim
    with pytest.raises(RuntimeError):
        build_network("small_cnn", 5).project(feats)


@pytest.mark.parametrize("name", ["preact_resnet18", "resnet18", "small_cnn"])
def test_channels_last_matches_contiguous(name):
    torch.manual_seed(0)
    net = build_network(name, 10, proj_dim=8).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = net.forward_all(x)
        net_cl = net.to(memory_format=torch.channels_last)
        out = net_cl.forward_all(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(ref, out):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_autocast_bf16_forward_backward():
    net = build_network("resnet18", 10, proj_dim=8)
    x = torch.randn(4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _, proj = net.forward_all(x)
        loss = F.cross_entropy(logits.float(), torch.arange(4)) + proj.float().pow(2).mean()
    loss.backward()
    assert torch.isfinite(loss) and net.classifier.weight.grad is not None


@pytest.mark.parametrize("name", ALL)
def test_sgd_steps_lower_loss(name):
    torch.manual_seed(0)
    net = build_network(name, 4)
    x = torch.randn(8, 3, 8, 8)
    y = torch.arange(8) % 4
    # Small lr and 7 steps: at 0.01 the post-activation ResNet-50 overshoots on a single batch (large feature
    # norm), and its first few train-mode losses oscillate differently with the thread count.
    opt = torch.optim.SGD(net.parameters(), lr=0.001)
    losses = []
    for _ in range(8):  # 7 steps, then an 8th forward to read the loss after the last step
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], (name, losses)


def test_registry_and_errors():
    assert set(BACKBONES) == set(ALL) | {"vgg19_bn"}  # vgg19_bn needs >= 32x32 inputs: tests/test_bpt_plr.py
    assert all(isinstance(desc, str) and desc for _, desc in BACKBONES.values())
    assert isinstance(build_network("small_cnn", 3), Network)
    with pytest.raises(UserError, match="resnet18") as err:
        build_network("resnet19", 10)
    assert "Did you mean 'resnet18'" in str(err.value) and "small_cnn" in str(err.value)


def test_small_cnn_learns_digits():
    """The small CNN reaches >95% clean test accuracy on scikit-learn digits in a few CPU epochs (~2 s)."""
    datasets = pytest.importorskip("sklearn.datasets")
    from noisyclr.augment import build_view

    torch.manual_seed(0)
    digits = datasets.load_digits()
    images = torch.tensor(digits.images * 255 / 16).round().to(torch.uint8)[:, None]  # (N, 1, 8, 8)
    labels = torch.tensor(digits.target)
    perm = torch.randperm(len(labels))
    train, test = perm[:1400], perm[1400:]
    stats = dict(mean=[0.3], std=[0.4], image_size=8)
    weak = build_view("weak", padding=1, flip=False, **stats)  # digits are not mirror-symmetric
    plain = build_view("test", **stats)
    net = build_network("small_cnn", 10, in_channels=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        net.train()
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(net(weak(images[idx], gen)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(plain(images[test])).argmax(1) == labels[test]).float().mean().item()
    assert acc > 0.95, acc
