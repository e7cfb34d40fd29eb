"""ResNet-18/34/50 with the CIFAR stem (post-activation, BN shortcuts).

The stem is a 3×3 stride-1 convolution → BN → ReLU with no max-pool, so a 32×32 image reaches the last stage as a
4×4 map (the ImageNet stem would shrink it to 1×1). Blocks are the original post-activation BasicBlock (ResNet-18/34)
and Bottleneck (ResNet-50, expansion 4), with 1×1 conv + BN projection shortcuts where the shape changes. Features
are globally average-pooled: 512-d for ResNet-18/34, 2048-d for ResNet-50.
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


class ResNet(ResNetStages):
    """CIFAR-stem ResNet backbone: ``(B, C, H, W)`` → ``(B, feat_dim)``, in the stages of
    :class:`~noisyclr.models.staged.ResNetStages`, globally average-pooled.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        num_blocks: blocks per stage.
        in_channels: image channels.
        width: channels of the first stage (64 is standard); stages use ``width × (1, 2, 4, 8)``.
    """

    def __init__(self, block, num_blocks, in_channels: int = 3, width: int = 64):
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], 1)
        self.layer2 = self._make_layer(block, width * 2, num_blocks[1], 2)
        self.layer3 = self._make_layer(block, width * 4, num_blocks[2], 2)
        self.layer4 = self._make_layer(block, width * 8, num_blocks[3], 2)
        self.feat_dim = width * 8 * block.expansion

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
