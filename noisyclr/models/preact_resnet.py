"""PreAct ResNet-18 exactly as DivideMix's ``PreResNet.py`` (docs/methods/dividemix.md, "Model").

The reference network, layer by layer:

* stem: ``conv3x3(in_ch, 64)`` (stride 1, padding 1, no bias) → BN → ReLU;
* four stages of two :class:`PreActBlock` each, widths 64/128/256/512, strides 1/2/2/2;
* **no** final BN/ReLU after the last stage (the reference goes straight from ``layer4`` to pooling); TCL's
  ``bigresnet18_preact`` has one (``final_bn=True``, backbone name ``preact_resnet18_bn``: docs/methods/tcl.md,
  "Model");
* ``avg_pool2d(out, 4)`` → 512-d feature → ``Linear(512, C)`` (the linear layer lives in
  :class:`noisyclr.models.network.Network`, not here).

Two reference details that are easy to get wrong and that we keep on purpose:

* the shortcut of *every* block is taken from the pre-activated input ``relu(bn1(x))``, also when it is the identity
  (the reference always builds ``self.shortcut`` as an empty ``nn.Sequential`` and always calls it on ``out``);
* the 1×1 projection shortcut has no BN.

For 32×32 inputs the final map is 4×4, so our adaptive average pooling equals the reference ``avg_pool2d(out, 4)``.
Unlike the reference it also works for 8×8 inputs (1×1 map) and 64×64 inputs; note that PLReMix's Tiny-ImageNet
model instead keeps ``avg_pool2d(4)`` and flattens a 2×2×512 map into 2048 features; we always give 512
(docs/methods/plremix.md, "Deviations and switches", Tiny-ImageNet feature size).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .staged import ResNetStages


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3×3 convolution, padding 1, no bias (the BN that follows makes a bias redundant)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """Pre-activation basic block: ``bn1 → relu → conv1(stride) → bn2 → relu → conv2`` plus shortcut.

    The shortcut sees the pre-activated input (identity or 1×1 conv without BN), as in the reference.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * self.expansion, kernel_size=1, stride=stride, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(ResNetStages):
    """PreAct ResNet backbone: ``(B, C, H, W)`` images → ``(B, feat_dim)`` pooled features, in the stages of
    :class:`~noisyclr.models.staged.ResNetStages`. The global average pool equals the reference ``avg_pool2d(out, 4)``
    on 32×32 inputs (a 4×4 map) and is still valid on 8×8 or 64×64 inputs.

    Args:
        num_blocks: blocks per stage (``(2, 2, 2, 2)`` for ResNet-18).
        in_channels: image channels (3 for RGB, 1 for grayscale).
        width: channels of the first stage; stages use ``width × (1, 2, 4, 8)``. 64 is the reference.
        final_bn: BN → ReLU after ``layer4`` (part of the last stage), as TCL's PreAct ResNet-18: a pre-activation
            network otherwise pools a map that no normalisation has seen.
    """

    def __init__(self, num_blocks=(2, 2, 2, 2), in_channels: int = 3, width: int = 64, final_bn: bool = False):
        super().__init__()
        self.in_planes = width
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(width * 2, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(width * 4, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(width * 8, num_blocks[3], stride=2)
        self.feat_dim = width * 8 * PreActBlock.expansion
        self.bn_final = nn.BatchNorm2d(self.feat_dim) if final_bn else None

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = super().stage(i, x)
        if i == 4 and self.bn_final is not None:
            x = F.relu(self.bn_final(x))
        return x

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes * PreActBlock.expansion
        return nn.Sequential(*layers)


def preact_resnet18(in_channels: int = 3, width: int | None = None) -> PreActResNet:
    """DivideMix's PreAct ResNet-18 backbone (512-d features at the default width 64)."""
    return PreActResNet((2, 2, 2, 2), in_channels=in_channels, width=width or 64)


def preact_resnet18_bn(in_channels: int = 3, width: int | None = None) -> PreActResNet:
    """TCL's PreAct ResNet-18: :func:`preact_resnet18` with BN → ReLU after the last stage."""
    return PreActResNet((2, 2, 2, 2), in_channels=in_channels, width=width or 64, final_bn=True)
