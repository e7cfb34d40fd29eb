"""A small, fast CNN for 8×8 (scikit-learn digits) up to 32×32 inputs.

Three ``conv3x3 → BN → ReLU`` blocks; the second and third are followed by a 2×2 max-pool, so an 8×8 input ends
as a 2×2 map (pooling every block would leave 1×1 before the last conv, which then sees only zero padding around
one pixel) and a 32×32 input as 8×8. Global average pooling makes the feature size independent of the input.

The 2×2 max-pool is :func:`max_pool2x2`: the same numbers as ``F.max_pool2d(x, 2)``, bit for bit, forward and
backward, without the slow path of torch's CPU kernel for NCHW tensors (a quarter of a digits run's CPU time).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .staged import StagedBackbone

_aten = torch.ops.aten


class _MaxPool2x2(torch.autograd.Function):
    """``F.max_pool2d(x, 2)`` of a contiguous NCHW CPU tensor, with the gradient torch's own op has.

    Torch's CPU max-pool walks an NCHW tensor one scalar at a time (~3 ms for a 64×64×8×8 batch); its channels-last
    kernel is vectorised (~0.25 ms). The forward pools a channels-last copy: the same maxima and the same argmax
    indices (both kernels keep the first maximum of the window in row-major order, NaN winning), so the backward,
    torch's own ``max_pool2d_with_indices_backward`` on the NCHW input with those indices, writes exactly the
    gradient the plain op writes. The backward is made of differentiable torch ops: double backward (MW-Net's
    meta-gradient, ``create_graph=True``) records the same node as the plain op.
    """

    @staticmethod
    def forward(ctx, x):
        out, idx = _aten.max_pool2d_with_indices(x.contiguous(memory_format=torch.channels_last), [2, 2], [2, 2])
        idx = idx.contiguous()
        ctx.save_for_backward(x, idx)
        return out.contiguous()

    @staticmethod
    def backward(ctx, grad):
        x, idx = ctx.saved_tensors
        return _aten.max_pool2d_with_indices_backward(grad.contiguous(), x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``, bit for bit (values, and gradients when they are taken), faster on the CPU.

    A contiguous NCHW CPU batch of even height and width takes a fast path: without autograd (evaluation passes,
    DivideMix's target passes) the elementwise maximum of the four strided sub-grids (the same maxima; only the sign
    of a zero could differ, which no later sum or product sees), with autograd :class:`_MaxPool2x2`. Anything else
    (CUDA, channels_last, odd sizes, ``torch.compile`` tracing) is ``F.max_pool2d`` itself.
    """
    if (x.device.type != "cpu" or x.dim() != 4 or x.shape[-1] % 2 or x.shape[-2] % 2 or not x.is_contiguous()
            or torch.compiler.is_compiling()):
        return F.max_pool2d(x, 2)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool2x2.apply(x)
    top = torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2])
    return torch.maximum(top, torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))


def _block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)
    )


class SmallCNN(StagedBackbone):
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

    # stages (noisyclr.models.network.Network mixes hidden states between them): block1 | block2, pool | block3, pool
    num_stages = 3

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i`` (0-based) of the backbone on its input ``x``."""
        if i == 0:
            return self.block1(x)
        return max_pool2x2((self.block2, self.block3)[i - 1](x))



def small_cnn(in_channels: int = 3, width: int | None = None) -> SmallCNN:
    """Small CNN with block widths ``(w, 2w, 4w)``, ``w = width or 32``; features are ``4w``-d."""
    w = width or 32
    return SmallCNN(in_channels, (w, 2 * w, 4 * w))
