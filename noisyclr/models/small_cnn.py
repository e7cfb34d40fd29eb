"""A small, fast CNN for 8×8 (scikit-learn digits) up to 32×32 inputs.

Three ``conv3x3 → BN → ReLU`` blocks; the second and third are followed by a 2×2 max-pool, so an 8×8 input ends
as a 2×2 map (pooling every block would leave 1×1 before the last conv, which then sees only zero padding around
one pixel) and a 32×32 input as 8×8. Global average pooling makes the feature size independent of the input.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """``(B, C, H, W)`` → ``(B, widths[-1])`` features; H, W ≥ 4.

    Args:
        in_channels: image channels.
        widths: channels of the three blocks (default 32/64/128).
    """

    def __init__(self, in_channels: int = 3, widths=(32, 64, 128)):
        super().__init__()
        w1, w2, w3 = widths
        self.block1 = _block(in_channels, w1)
        self.block2 = _block(w1, w2)
        self.block3 = _block(w2, w3)
        self.feat_dim = w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block1(x)
        out = F.max_pool2d(self.block2(out), 2)
        out = F.max_pool2d(self.block3(out), 2)
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


def small_cnn(in_channels: int = 3, width: int | None = None) -> SmallCNN:
    """Small CNN with block widths ``(w, 2w, 4w)``, ``w = width or 32``; features are ``4w``-d."""
    w = width or 32
    return SmallCNN(in_channels, (w, 2 * w, 4 * w))
