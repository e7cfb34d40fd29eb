"""Backbones and the :class:`Network` wrapper; :func:`build_network` builds one by name.

Every backbone constructor has the signature ``(in_channels: int = 3, width: int | None = None) -> nn.Module`` and
returns a module mapping ``(B, C, H, W)`` to ``(B, feat_dim)`` with a ``feat_dim`` attribute.
"""

from __future__ import annotations

import difflib

from noisyclr.errors import UserError
from noisyclr.models.inception_resnet_v2 import InceptionResNetV2, inception_resnet_v2
from noisyclr.models.network import Network
from noisyclr.models.pretrained import load_torchvision_weights
from noisyclr.models.preact_resnet import PreActResNet, preact_resnet18, preact_resnet18_bn
from noisyclr.models.resnet import ResNet, resnet18, resnet34, resnet50, resnet50_imagenet
from noisyclr.models.small_cnn import SmallCNN, small_cnn
from noisyclr.models.vgg import VGG, vgg19_bn

BACKBONES = {
    "inception_resnet_v2": (inception_resnet_v2, "Inception-ResNet-v2 of DivideMix's WebVision runs (299x299 inputs, >= 75x75), 1536-d features, ~54.3M params"),
    "preact_resnet18": (preact_resnet18, "PreAct ResNet-18 of DivideMix (CIFAR, 512-d features, ~11.2M params)"),
    "preact_resnet18_bn": (preact_resnet18_bn, "PreAct ResNet-18 with BN+ReLU after the last stage (TCL), 512-d features"),
    "resnet18": (resnet18, "ResNet-18 with CIFAR stem (3x3 conv, no max-pool), 512-d features"),
    "resnet34": (resnet34, "ResNet-34 with CIFAR stem, 512-d features"),
    "resnet50": (resnet50, "ResNet-50 (bottleneck) with CIFAR stem, 2048-d features"),
    "resnet50_imagenet": (resnet50_imagenet, "torchvision's ResNet-50 (7x7 stem + max-pool, 224x224 inputs), 2048-d features, ~23.5M params; model.pretrained loads torchvision weights"),
    "small_cnn": (small_cnn, "3-block conv-BN-ReLU CNN for 8x8 to 32x32 inputs, 128-d features"),
    "vgg19_bn": (vgg19_bn, "VGG-19 with batch norm (torchvision cfg E, BPT-PLR Animal-10N), 7x7 adaptive pool, 25088-d features, inputs >= 32x32"),
}

#: the smallest input side a backbone takes (a smaller one empties a feature map deep inside it)
MIN_INPUT_SIDE = {"inception_resnet_v2": 75, "vgg19_bn": 32}


def build_network(backbone: str, num_classes: int, *, in_channels: int = 3, proj_dim: int | None = None,
                  proj_hidden: int | None = None, proj_bn: bool = True, width: int | None = None,
                  pretrained: str | None = None, **heads) -> Network:
    """Build ``Network(BACKBONES[backbone](in_channels, width), num_classes, proj_dim, proj_hidden, **heads)``.

    ``heads``: the head options of :class:`Network` (``classifier``, ``dropout``, ``proj_out_bn``, ``projector``).

    ``width`` scales the backbone (first-stage channels for ResNets, first block for ``small_cnn``); ``None`` keeps
    the standard width. An unknown name raises :class:`UserError` listing the valid names.

    ``pretrained``: path of a torchvision-format checkpoint loaded into the backbone only (``model.pretrained``,
    :func:`noisyclr.models.pretrained.load_torchvision_weights`); the heads keep their fresh initialisation.
    """
    if backbone not in BACKBONES:
        close = difflib.get_close_matches(str(backbone), list(BACKBONES), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UserError(f"unknown backbone '{backbone}'; choose one of: {', '.join(BACKBONES)}.{hint}")
    constructor, _ = BACKBONES[backbone]
    net = Network(constructor(in_channels=in_channels, width=width), num_classes, proj_dim=proj_dim,
                  proj_hidden=proj_hidden, proj_bn=proj_bn, **heads)
    if pretrained is not None:
        load_torchvision_weights(net.backbone, pretrained, backbone)
    return net


__all__ = [
    "BACKBONES", "MIN_INPUT_SIDE", "Network", "build_network", "InceptionResNetV2", "PreActResNet", "ResNet", "SmallCNN",
    "inception_resnet_v2", "preact_resnet18", "preact_resnet18_bn", "resnet18", "resnet34", "resnet50",
    "resnet50_imagenet", "small_cnn", "VGG", "vgg19_bn",
]
