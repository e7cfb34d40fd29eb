"""The stage protocol every backbone follows, so that a network can stop, mix or read out between stages.

A backbone is ``num_stages`` stages and a pool: ``forward(x) = pool(stage(S-1, … stage(0, x)))``.
:meth:`noisyclr.models.network.Network.forward` walks the stages itself, which is how it mixes hidden states after
stage k (manifold mixup). Splitting a forward this way changes no number: the same modules run in the same order.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class StagedBackbone(nn.Module):
    """Base of the backbones: subclasses set ``num_stages`` and ``feat_dim`` and implement :meth:`stage`."""

    num_stages: int

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i`` (0-based) on its input ``x`` (the images for ``i = 0``)."""
        raise NotImplementedError

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map ``(B, C, h, w)`` → ``(B, feat_dim)`` features: global average pooling (any input
        size: a 4×4 map at 32×32, 1×1 at 8×8)."""
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_stages):
            x = self.stage(i, x)
        return self.pool(x)


class ResNetStages(StagedBackbone):
    """The stage split of both ResNet families: the stem (``conv1 → bn1 → ReLU``), then ``layer1`` … ``layer4``."""

    num_stages = 5

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            return F.relu(self.bn1(self.conv1(x)))
        return (self.layer1, self.layer2, self.layer3, self.layer4)[i - 1](x)
