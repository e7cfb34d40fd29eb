"""Inception-ResNet-v2 (Szegedy et al. 2017) for 299×299 images: the WebVision backbone of DivideMix.

The layout is that of Cadene's ``pretrainedmodels.inceptionresnetv2`` (a port of TF-slim's), which DivideMix's
WebVision script trains from scratch; every module has the same name there, so a Cadene state dict's backbone keys
(all but ``last_linear.*``) are this module's keys. Channels and grid for a 299×299 input:

================  ==================================================================  ==============
stage             modules                                                             output
================  ==================================================================  ==============
0 (stem)          ``conv2d_1a`` … ``maxpool_5a``, ``mixed_5b``                        320 × 35 × 35
1                 ``repeat``: 10 × :class:`Block35` (scale 0.17)                      320 × 35 × 35
2                 ``mixed_6a`` (reduction), ``repeat_1``: 20 × :class:`Block17` (0.10)  1088 × 17 × 17
3                 ``mixed_7a`` (reduction), ``repeat_2``: 9 × :class:`Block8` (0.20),  1536 × 8 × 8
                  ``block8`` (scale 1, no ReLU), ``conv2d_7b`` (1×1 → 1536)
================  ==================================================================  ==============

Every convolution but the residual up-projections is ``conv (no bias) → BN (eps 0.001, TF's value) → ReLU``; the
up-projection of each residual block is a 1×1 convolution *with* bias and no BN, whose output is scaled before it
is added to the input (the scaling keeps the very deep residual stack stable, as the paper describes). Weights keep
PyTorch's default initialisation, as the reference's from-scratch run does.

Differences from the reference: the 8×8 average pool is adaptive (so other input sizes give a 1536-d feature too;
the smallest input that reaches ``mixed_7a`` with a non-empty map is 75×75) and the classifier is the
:class:`~noisyclr.models.network.Network`'s ``Linear(1536, C)``, not ``last_linear``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from .staged import StagedBackbone


class BasicConv2d(nn.Module):
    """``conv (no bias) → BN(eps=0.001) → ReLU``; ``kernel_size`` and ``padding`` may be ``(h, w)`` pairs."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_planes, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(*convs: tuple) -> nn.Sequential:
    """A branch of :class:`BasicConv2d` layers, one per ``(in, out, kernel[, stride[, padding]])`` tuple."""
    return nn.Sequential(*(BasicConv2d(*spec) for spec in convs))


class Mixed5b(nn.Module):
    """``(B, 192, h, w)`` → ``(B, 320, h, w)``: 1×1 (96) | 1×1 → 5×5 (64) | 1×1 → 3×3 → 3×3 (96) |
    avg-pool → 1×1 (64)."""

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(192, 96, 1)
        self.branch1 = _chain((192, 48, 1), (48, 64, 5, 1, 2))
        self.branch2 = _chain((192, 64, 1), (64, 96, 3, 1, 1), (96, 96, 3, 1, 1))
        # count_include_pad=False: the border average is over real pixels only, as TF's 'SAME' average pool
        self.branch3 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
                                     BasicConv2d(192, 64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class _Residual(nn.Module):
    """Shared forward of the three residual blocks: ``relu(x + scale · conv2d(cat(branches)))`` (no ReLU for
    ``relu=False``). Subclasses set ``branch0``, ``branch1`` (, ``branch2``), in that order, and the 1×1 ``conv2d``."""

    def __init__(self, scale: float, relu: bool = True):
        super().__init__()
        self.scale = scale
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [m(x) for name, m in self.named_children() if name.startswith("branch")]
        out = self.conv2d(torch.cat(branches, 1)) * self.scale + x
        return F.relu(out) if self.relu else out


class Block35(_Residual):
    """Inception-ResNet-A on the 35×35 grid, ``(B, 320, h, w)`` → same: 1×1 (32) | 1×1 → 3×3 (32) |
    1×1 → 3×3 (48) → 3×3 (64), concatenated (128) → 1×1 (320)."""

    def __init__(self, scale: float = 0.17):
        super().__init__(scale)
        self.branch0 = BasicConv2d(320, 32, 1)
        self.branch1 = _chain((320, 32, 1), (32, 32, 3, 1, 1))
        self.branch2 = _chain((320, 32, 1), (32, 48, 3, 1, 1), (48, 64, 3, 1, 1))
        self.conv2d = nn.Conv2d(128, 320, 1)


class Mixed6a(nn.Module):
    """Reduction-A, ``(B, 320, h, w)`` → ``(B, 1088, (h−3)//2+1, …)``: 3×3/2 (384) | 1×1 → 3×3 → 3×3/2 (384) |
    3×3/2 max-pool (320)."""

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(320, 384, 3, 2)
        self.branch1 = _chain((320, 256, 1), (256, 256, 3, 1, 1), (256, 384, 3, 2))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class Block17(_Residual):
    """Inception-ResNet-B on the 17×17 grid, ``(B, 1088, h, w)`` → same: 1×1 (192) | 1×1 (128) → 1×7 (160) →
    7×1 (192), concatenated (384) → 1×1 (1088)."""

    def __init__(self, scale: float = 0.10):
        super().__init__(scale)
        self.branch0 = BasicConv2d(1088, 192, 1)
        self.branch1 = _chain((1088, 128, 1), (128, 160, (1, 7), 1, (0, 3)), (160, 192, (7, 1), 1, (3, 0)))
        self.conv2d = nn.Conv2d(384, 1088, 1)


class Mixed7a(nn.Module):
    """Reduction-B, ``(B, 1088, h, w)`` → ``(B, 2080, (h−3)//2+1, …)``: 1×1 → 3×3/2 (384) | 1×1 → 3×3/2 (288) |
    1×1 → 3×3 → 3×3/2 (320) | 3×3/2 max-pool (1088)."""

    def __init__(self):
        super().__init__()
        self.branch0 = _chain((1088, 256, 1), (256, 384, 3, 2))
        self.branch1 = _chain((1088, 256, 1), (256, 288, 3, 2))
        self.branch2 = _chain((1088, 256, 1), (256, 288, 3, 1, 1), (288, 320, 3, 2))
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class Block8(_Residual):
    """Inception-ResNet-C on the 8×8 grid, ``(B, 2080, h, w)`` → same: 1×1 (192) | 1×1 (192) → 1×3 (224) →
    3×1 (256), concatenated (448) → 1×1 (2080)."""

    def __init__(self, scale: float = 0.20, relu: bool = True):
        super().__init__(scale, relu)
        self.branch0 = BasicConv2d(2080, 192, 1)
        self.branch1 = _chain((2080, 192, 1), (192, 224, (1, 3), 1, (0, 1)), (224, 256, (3, 1), 1, (1, 0)))
        self.conv2d = nn.Conv2d(448, 2080, 1)


class InceptionResNetV2(StagedBackbone):
    """``(B, C, H, W)`` (299×299 as designed; H, W ≥ 75) → ``(B, 1536)`` features, in the four stages of the
    module docstring's table, globally average-pooled.

    Args:
        in_channels: image channels.
    """

    num_stages = 4

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv2d_1a = BasicConv2d(in_channels, 32, 3, 2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = Mixed5b()
        self.repeat = nn.Sequential(*(Block35(0.17) for _ in range(10)))
        self.mixed_6a = Mixed6a()
        self.repeat_1 = nn.Sequential(*(Block17(0.10) for _ in range(20)))
        self.mixed_7a = Mixed7a()
        self.repeat_2 = nn.Sequential(*(Block8(0.20) for _ in range(9)))
        self.block8 = Block8(1.0, relu=False)
        self.conv2d_7b = BasicConv2d(2080, 1536, 1)
        self.feat_dim = 1536

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            for m in (self.conv2d_1a, self.conv2d_2a, self.conv2d_2b, self.maxpool_3a, self.conv2d_3b,
                      self.conv2d_4a, self.maxpool_5a, self.mixed_5b):
                x = m(x)
            return x
        if i == 1:
            return self.repeat(x)
        if i == 2:
            return self.repeat_1(self.mixed_6a(x))
        return self.conv2d_7b(self.block8(self.repeat_2(self.mixed_7a(x))))


def inception_resnet_v2(in_channels: int = 3, width: int | None = None) -> InceptionResNetV2:
    """Inception-ResNet-v2, 1536-d features (54,306,464 backbone parameters); its widths are fixed."""
    if width is not None:
        raise UserError(f"backbone inception_resnet_v2 has fixed widths, got model.width={width}; "
                        "leave model.width unset (null)")
    return InceptionResNetV2(in_channels)
