"""ResNet-18/34/50 (post-activation, BN shortcuts) with the CIFAR stem, and ResNet-50 with the ImageNet stem.

The CIFAR stem is a 3×3 stride-1 convolution → BN → ReLU with no max-pool, so a 32×32 image reaches the last stage
as a 4×4 map (the ImageNet stem would shrink it to 1×1). The ImageNet stem (``resnet50_imagenet``) is torchvision's:
7×7 stride-2 convolution (padding 3) → BN → ReLU → 3×3 stride-2 max-pool (padding 1), so a 224×224 image reaches the
stages as 56×56 and the last stage as 7×7. Blocks are the original post-activation BasicBlock (ResNet-18/34) and
Bottleneck (ResNet-50, expansion 4, the stride on the 3×3 convolution as torchvision's "v1.5"), with 1×1 conv + BN
projection shortcuts where the shape changes. Features are globally average-pooled: 512-d for ResNet-18/34, 2048-d
for ResNet-50.

``resnet50_imagenet`` is torchvision's ``resnet50`` module for module (its weights load through
:mod:`noisyclr.models.pretrained`; the only name that differs is our ``shortcut`` for torchvision's ``downsample``)
and starts from torchvision's initialisation (Kaiming-normal fan-out convolutions, BN weight 1 and bias 0).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .staged import ResNetStages


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a 1×1 conv + BN that maps to the block's output shape."""
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class BasicBlock(nn.Module):
    """``conv3x3(stride) → BN → ReLU → conv3x3 → BN``, plus shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _projection(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """``1×1 → 3×3(stride) → 1×1 (×4 channels)``, each with BN (ReLU between), plus shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _projection(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


STEMS = ("cifar", "imagenet")


class ResNet(ResNetStages):
    """ResNet backbone: ``(B, C, H, W)`` → ``(B, feat_dim)``, in the stages of
    :class:`~noisyclr.models.staged.ResNetStages` (stage 0 is the stem, max-pool included), globally average-pooled.

    Stage outputs for a 224×224 input with the ImageNet stem: ``(B, width, 56, 56)``, then ``(B, width·e, 56, 56)``,
    ``(B, 2·width·e, 28, 28)``, ``(B, 4·width·e, 14, 14)``, ``(B, 8·width·e, 7, 7)`` (``e`` = ``block.expansion``).
    With the CIFAR stem a 32×32 input keeps 32×32 through stage 1 and ends at 4×4.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        num_blocks: blocks per stage.
        in_channels: image channels.
        width: channels of the first stage (64 is standard); stages use ``width × (1, 2, 4, 8)``.
        stem: ``"cifar"`` (3×3 stride-1 convolution, no max-pool) or ``"imagenet"`` (torchvision's 7×7 stride-2
            convolution and 3×3 stride-2 max-pool, with torchvision's initialisation).
    """

    def __init__(self, block, num_blocks, in_channels: int = 3, width: int = 64, stem: str = "cifar"):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown ResNet stem {stem!r}; choose one of {', '.join(STEMS)}")
        self.in_planes = width
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], 1)
        self.layer2 = self._make_layer(block, width * 2, num_blocks[1], 2)
        self.layer3 = self._make_layer(block, width * 4, num_blocks[2], 2)
        self.layer4 = self._make_layer(block, width * 8, num_blocks[3], 2)
        self.feat_dim = width * 8 * block.expansion
        if stem == "imagenet":
            # torchvision's init, so that training from scratch matches a torchvision resnet50 run; the CIFAR
            # variants keep PyTorch's default init, which their reference recipes were tuned with
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            return self.maxpool(super().stage(0, x))
        return super().stage(i, x)

    def _make_layer(self, block, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)


def resnet18(in_channels: int = 3, width: int | None = None) -> ResNet:
    """ResNet-18, CIFAR stem, 512-d features at width 64."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, width or 64)


def resnet34(in_channels: int = 3, width: int | None = None) -> ResNet:
    """ResNet-34, CIFAR stem, 512-d features at width 64."""
    return ResNet(BasicBlock, (3, 4, 6, 3), in_channels, width or 64)


def resnet50(in_channels: int = 3, width: int | None = None) -> ResNet:
    """ResNet-50, CIFAR stem, 2048-d features at width 64."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, width or 64)


def resnet50_imagenet(in_channels: int = 3, width: int | None = None) -> ResNet:
    """torchvision's ResNet-50 (ImageNet stem), 2048-d features at width 64 (23,508,032 backbone parameters)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, width or 64, stem="imagenet")
