"""The ImageNet-size backbones (docs/models.md): torchvision's ResNet-50 with local pretrained weights
(``model.pretrained``) and DivideMix's Inception-ResNet-v2 for WebVision."""

import re
import subprocess
import sys

import pytest
import torch

from noisyclr.config import check_paths, load_config
from noisyclr.errors import UserError
from noisyclr.models import build_network
from noisyclr.models.pretrained import torchvision_to_backbone

TINY = [
    "dataset.name=synthetic",
    "dataset.options={num_classes: 3, image_size: 8, train_size: 48, test_size: 24}",
    "train.epochs=1",
    "train.batch_size=16",
    "train.device=cpu",
]
PRESET = "standard-ce-digits-sym50"

# Hand-checked against torchvision.models.resnet50(num_classes=1000).state_dict()
TORCHVISION_RESNET50_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.weight": (64,),
    "bn1.running_mean": (64,),
    "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.running_var": (256,),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.3.bn3.bias": (512,),
    "layer3.5.conv2.weight": (256, 256, 3, 3),
    "layer3.5.conv3.weight": (1024, 256, 1, 1),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "layer4.2.bn3.weight": (2048,),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}
TORCHVISION_RESNET50_PARAMS = 25_557_032  # torchvision resnet50, 1000 classes
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def to_torchvision(backbone_state: dict) -> dict:
    """Backbone keys → torchvision keys (the inverse of the library's rename, written independently)."""
    return {re.sub(r"^(layer\d+\.\d+)\.shortcut\.", r"\1.downsample.", k): v for k, v in backbone_state.items()}


def torchvision_like(width=None, seed=0) -> dict:
    """A torchvision-format resnet50 state dict with random values (none equal to a fresh initialisation)."""
    gen = torch.Generator().manual_seed(seed)
    backbone = build_network("resnet50_imagenet", 2, width=width).backbone
    state = {}
    for key, value in backbone.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.randint(1, 10_000, (), generator=gen)
        else:
            state[key] = torch.randn(value.shape, generator=gen).abs_() + 0.1  # positive: valid running_var too
    state = to_torchvision(state)
    feat = 8 * (width or 64) * 4
    state["fc.weight"] = torch.randn(1000, feat, generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    state = torchvision_like()
    path = tmp_path_factory.mktemp("tv") / "resnet50-test.pth"
    torch.save(state, path)
    return path, state


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------------------------
# ResNet-50 with the ImageNet stem


def test_resnet50_imagenet_stem_shapes():
    net = build_network("resnet50_imagenet", 5).eval()
    backbone = net.backbone
    assert (backbone.conv1.kernel_size, backbone.conv1.stride, backbone.conv1.padding) == ((7, 7), (2, 2), (3, 3))
    assert backbone.feat_dim == 2048 and backbone.num_stages == 5
    x = torch.randn(2, 3, 224, 224)
    shapes = []
    with torch.no_grad():
        h = x
        for i in range(backbone.num_stages):
            h = backbone.stage(i, h)
            shapes.append(tuple(h.shape[1:]))
        out = net(x, heads=("logits", "features"))
    assert shapes == [(64, 56, 56), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    assert out.features.shape == (2, 2048) and out.logits.shape == (2, 5)
    assert torch.allclose(out.features, backbone.pool(h))


def test_torchvision_key_names_and_counts(torchvision_file):
    _, state = torchvision_file
    assert len(state) == 320
    for key, shape in TORCHVISION_RESNET50_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    params = sum(v.numel() for k, v in state.items() if not k.endswith(BN_BUFFERS))
    assert params == TORCHVISION_RESNET50_PARAMS
    net = build_network("resnet50_imagenet", 1000)
    assert sum(p.numel() for p in net.parameters()) == TORCHVISION_RESNET50_PARAMS
    mapped = torchvision_to_backbone(state, "resnet50_imagenet")
    assert list(mapped) == list(net.backbone.state_dict())  # 318 keys: fc dropped, downsample -> shortcut
    assert mapped["layer4.0.shortcut.0.weight"] is state["layer4.0.downsample.0.weight"]
    wrapped = torchvision_to_backbone({f"module.{k}": v for k, v in state.items()}, "resnet50_imagenet")
    assert list(wrapped) == list(mapped)


def test_pretrained_loads_through_the_build_path(torchvision_file):
    from noisyclr.data.prepare import prepare_data
    from noisyclr.engine import build_context, seed_everything

    path, state = torchvision_file
    cfg = load_config(PRESET, TINY + ["model.backbone=resnet50_imagenet", f"model.pretrained={path}"])
    check_paths(cfg)
    seed_everything(0)
    ctx = build_context(cfg, prepare_data(cfg), torch.device("cpu"))
    net = ctx.build_network()
    loaded = net.backbone.state_dict()
    assert len(loaded) == 318
    for key, value in loaded.items():
        assert torch.equal(value, state[re.sub(r"^(layer\d+\.\d+)\.shortcut\.", r"\1.downsample.", key)]), key
    assert net.classifier.weight.shape == (3, 2048)  # the run's own head, not the file's fc


def test_pretrained_wrapped_prefixed_and_without_bn_counters(tmp_path):
    state = torchvision_like(width=8, seed=1)
    # a training script's checkpoint: under "state_dict", DDP prefixes, no num_batches_tracked (pre-0.4.1 files)
    payload = {"epoch": 90, "state_dict": {f"module.{k}": v for k, v in state.items()
                                           if not k.endswith("num_batches_tracked")}}
    torch.save(payload, tmp_path / "ckpt.pth")
    net = build_network("resnet50_imagenet", 2, width=8, pretrained=str(tmp_path / "ckpt.pth"))
    assert torch.equal(net.backbone.layer3[5].conv3.weight, state["layer3.5.conv3.weight"])
    assert torch.equal(net.backbone.layer2[0].shortcut[1].running_var, state["layer2.0.downsample.1.running_var"])
    assert int(net.backbone.bn1.num_batches_tracked) == 0


@pytest.mark.parametrize("mutate, needles", [
    (lambda s: s.pop("layer3.5.conv3.weight"), ["missing keys layer3.5.conv3.weight"]),
    (lambda s: s.update({"layer5.0.conv1.weight": torch.zeros(1)}), ["unexpected keys layer5.0.conv1.weight"]),
    (lambda s: s.update({"conv1.weight": torch.zeros(8, 3, 3, 3)}), ["shape mismatches conv1.weight", "8x3x3x3"]),
    (lambda s: s.update({"conv1.weight": torch.zeros(8, 1, 7, 7)}), ["1-channel images"]),
])
def test_bad_checkpoint_is_one_user_error_line(tmp_path, mutate, needles):
    state = torchvision_like(width=8)
    mutate(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(UserError) as exc:
        build_network("resnet50_imagenet", 2, width=8, pretrained=str(tmp_path / "bad.pth"))
    message = one_line(exc)
    assert "model.pretrained=" in message and "does not fit model.backbone=resnet50_imagenet" in message
    assert all(n in message for n in needles), message


def test_pretrained_path_and_backbone_errors(tmp_path):
    missing = tmp_path / "nowhere.pth"
    cfg = load_config(PRESET, TINY + ["model.backbone=resnet50_imagenet", f"model.pretrained={missing}"])
    with pytest.raises(UserError) as exc:
        check_paths(cfg)
    assert "model.pretrained" in one_line(exc) and "nowhere.pth" in str(exc.value)
    with pytest.raises(UserError) as exc:
        build_network("resnet50_imagenet", 2, width=8, pretrained=str(missing))
    assert "does not exist" in one_line(exc)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError) as exc:
        build_network("resnet50_imagenet", 2, width=8, pretrained=str(tmp_path / "junk.pth"))
    assert "weights-only state dict" in one_line(exc)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "small.pth")
    with pytest.raises(UserError) as exc:
        build_network("small_cnn", 2, pretrained=str(tmp_path / "small.pth"))
    assert "model.backbone=small_cnn" in one_line(exc) and "resnet50_imagenet" in str(exc.value)
    with pytest.raises(UserError) as exc:
        load_config(PRESET, TINY + [f"model.pretrained={tmp_path / 'small.pth'}", f"model.init={tmp_path}"])
    assert "model.init" in one_line(exc)


def test_cli_missing_pretrained_file_exits_2_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "noisyclr", "train", PRESET, *TINY, "model.backbone=resnet50_imagenet",
         f"model.pretrained={tmp_path / 'nowhere.pth'}", "--out", str(tmp_path / "x")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "model.pretrained" in proc.stderr and "nowhere.pth" in proc.stderr
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------------------------------
# Inception-ResNet-v2


def test_inception_resnet_v2_shapes_and_size():
    net = build_network("inception_resnet_v2", 1000).eval()
    backbone = net.backbone
    # 55,843,464: the figure published for Cadene's model with a 1000-way last_linear (imgclsmob's table)
    assert sum(p.numel() for p in net.parameters()) == 55_843_464
    assert sum(p.numel() for p in backbone.parameters()) == 54_306_464
    state = backbone.state_dict()
    # module names as Cadene's inceptionresnetv2, so its backbone keys line up
    cadene_keys = {
        "conv2d_1a.conv.weight": (32, 3, 3, 3), "mixed_5b.branch3.1.conv.weight": (64, 192, 1, 1),
        "repeat.9.conv2d.weight": (320, 128, 1, 1), "repeat_1.19.branch1.2.conv.weight": (192, 160, 7, 1),
        "repeat_2.8.branch1.1.conv.weight": (224, 192, 1, 3), "block8.conv2d.bias": (2080,),
        "conv2d_7b.bn.running_var": (1536,),
    }
    for key, shape in cadene_keys.items():
        assert tuple(state[key].shape) == shape, key
    assert backbone.conv2d_1a.bn.eps == 0.001 and not backbone.block8.relu and backbone.repeat_2[0].relu
    assert [b.scale for b in (backbone.repeat[0], backbone.repeat_1[0], backbone.repeat_2[0])] == [0.17, 0.10, 0.20]
    shapes = []
    with torch.no_grad():
        h = torch.randn(2, 3, 299, 299)
        for i in range(backbone.num_stages):
            h = backbone.stage(i, h)
            shapes.append(tuple(h.shape[1:]))
        features = backbone.pool(h)
        small = net(torch.randn(2, 3, 75, 75), heads=("logits", "features"))  # the smallest input it takes
    assert shapes == [(320, 35, 35), (320, 35, 35), (1088, 17, 17), (1536, 8, 8)]
    assert features.shape == (2, 1536) and net.classifier(features).shape == (2, 1000)
    assert small.features.shape == (2, 1536) and small.logits.shape == (2, 1000)
    with pytest.raises(UserError) as exc:
        build_network("inception_resnet_v2", 10, width=8)
    assert "model.width" in one_line(exc)
