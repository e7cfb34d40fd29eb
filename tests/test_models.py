"""Backbones and the Network wrapper: architecture sizes, shapes, consistency, and that they can learn."""

import pytest
import torch
import torch.nn.functional as F

from noisyclr.errors import UserError
from noisyclr.mixing import MixDraw, draw_mix
from noisyclr.models import BACKBONES, Network, build_network
from noisyclr.models.network import HEADS

ALL = ["preact_resnet18", "preact_resnet18_bn", "resnet18", "resnet34", "resnet50", "small_cnn"]


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
        logits, feats, proj = net(x, heads=("logits", "features"))
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
        logits, feats, _ = net(torch.randn(2, 3, 8, 8), heads=("logits", "features"))
    assert net.feat_dim == dim and feats.shape == (2, dim) and logits.shape == (2, 7)


@pytest.mark.parametrize("size", [8, 32])
def test_small_cnn_shapes(size):
    net = build_network("small_cnn", 10, in_channels=1).eval()
    with torch.no_grad():
        logits, feats, _ = net(torch.randn(3, 1, size, size), heads=("logits", "features"))
    assert logits.shape == (3, 10) and feats.shape == (3, 128)
    assert build_network("small_cnn", 10, width=16).feat_dim == 64


def test_forward_heads_consistent_and_projector():
    torch.manual_seed(0)
    net = build_network("small_cnn", 5, proj_dim=16, proj_hidden=32).eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        logits, feats, proj = net(x, heads=("logits", "features", "proj"))
        torch.testing.assert_close(logits, net(x), rtol=0, atol=0)
        torch.testing.assert_close(feats, net(x, heads=("features",)).features, rtol=0, atol=0)
        torch.testing.assert_close(proj, net.projector(feats), rtol=0, atol=0)
        assert net(x, heads=("proj",)).logits is None
    assert proj.shape == (4, 16)
    assert net.projector[0].out_features == 32
    assert build_network("small_cnn", 5, proj_dim=8).projector[0].out_features == 128  # hidden = feat_dim
    with pytest.raises(RuntimeError):
        build_network("small_cnn", 5)(x, heads=("proj",))


@pytest.mark.parametrize("name", ["preact_resnet18", "resnet18", "small_cnn"])
def test_channels_last_matches_contiguous(name):
    torch.manual_seed(0)
    net = build_network(name, 10, proj_dim=8).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = net(x, heads=HEADS)
        net_cl = net.to(memory_format=torch.channels_last)
        out = net_cl(x.contiguous(memory_format=torch.channels_last), heads=HEADS)
    for a, b in zip(ref, out):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_autocast_bf16_forward_backward():
    net = build_network("resnet18", 10, proj_dim=8)
    x = torch.randn(4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _, proj = net(x, heads=("logits", "proj"))
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
    # vgg19_bn needs >= 32x32 inputs (tests/test_bpt_plr.py); the ImageNet-stem nets: tests/test_imagenet_backbones.py
    assert set(BACKBONES) == set(ALL) | {"vgg19_bn", "resnet50_imagenet", "inception_resnet_v2"}
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


# ---------------------------------------------------------------------------------------------- staged forward


def _stages(name):
    from noisyclr.models import MIN_INPUT_SIDE

    width = None if name == "inception_resnet_v2" else 8  # its widths are fixed
    net = build_network(name, 5, in_channels=3, width=width, proj_dim=4).eval()
    size = MIN_INPUT_SIDE.get(name, 8)
    return net, torch.randn(6 if width else 2, 3, size, size)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_stages_compose_to_the_backbone(name):
    net, x = _stages(name)
    bb = net.backbone
    with torch.no_grad():
        h = x
        for i in range(bb.num_stages):
            h = bb.stage(i, h)
        torch.testing.assert_close(bb.pool(h), bb(x), rtol=0, atol=0)
    assert bb.num_stages >= 3


@pytest.mark.parametrize("name", list(BACKBONES))
def test_mixing_with_lambda_one_equals_the_plain_forward(name):
    net, x = _stages(name)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = net(x, heads=HEADS)
        for stage in range(net.backbone.num_stages + 1):
            mixed = net(x, heads=HEADS, mix=MixDraw(torch.tensor(1.0), perm, stage))
            for a, b in zip(plain, mixed):
                torch.testing.assert_close(b, a, rtol=0, atol=0)
    with pytest.raises(ValueError, match="mix.stage"):
        net(x, mix=MixDraw(torch.tensor(1.0), perm, net.backbone.num_stages + 1))


def test_mixing_after_stage_k_mixes_that_hidden_state():
    net, x = _stages("small_cnn")
    bb = net.backbone
    draw = draw_mix(0.75, len(x), torch.Generator().manual_seed(3), rule="plain", stage=2)
    lam, perm = float(draw.lam), draw.perm
    assert 0 < lam < 1 and sorted(perm.tolist()) == list(range(len(x)))
    with torch.no_grad():
        h = bb.stage(1, bb.stage(0, x))
        h = lam * h + (1 - lam) * h[perm]  # by hand: the state after stage 2 (1-based), mixed
        expected = net.classifier(bb.pool(bb.stage(2, h)))
        torch.testing.assert_close(net(x, mix=draw), expected, rtol=1e-5, atol=1e-6)
        # stage 0 mixes the images themselves
        torch.testing.assert_close(net(x, mix=draw.at_stage(0)), net(draw.apply(x)), rtol=0, atol=0)


def test_one_draw_mixes_inputs_hidden_states_and_targets_alike():
    g = torch.Generator().manual_seed(0)
    draw = draw_mix(4.0, 5, g)  # MixMatch's rule: λ' = max(λ, 1 − λ)
    assert float(draw.lam) >= 0.5
    x = torch.randn(5, 3, 8, 8)
    y = torch.eye(5)
    lam = float(draw.lam)
    torch.testing.assert_close(draw.apply(x), lam * x + (1 - lam) * x[draw.perm], rtol=1e-6, atol=1e-6)
    # a one-hot target row i becomes λ at i and 1 − λ at π(i): the same λ and π as the inputs
    mixed = draw.apply(y)
    for i in range(5):
        j = int(draw.perm[i])
        assert mixed[i, i] == pytest.approx(lam if i != j else 1.0, abs=1e-6)
        if i != j:
            assert mixed[i, j] == pytest.approx(1 - lam, abs=1e-6)
    # the same seed draws the same λ and π; plain keeps λ below ½ when drawn there
    again = draw_mix(4.0, 5, torch.Generator().manual_seed(0))
    assert torch.equal(again.lam, draw.lam) and torch.equal(again.perm, draw.perm)
    lams = [float(draw_mix(1.0, 4, torch.Generator().manual_seed(s), rule="plain").lam) for s in range(20)]
    assert min(lams) < 0.5 < max(lams)
    with pytest.raises(ValueError, match="3 rows"):
        draw.apply(torch.zeros(3, 2))
