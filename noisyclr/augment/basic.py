"""Batched, device-resident augmentation primitives.

Every function takes a whole batch ``(B, C, H, W)`` that already lives on the training device and returns a batch on
the same device. Random ops draw all per-sample parameters in one call from an explicitly passed
``torch.Generator`` (on the data's device), never from the global RNG: the generator state is checkpointed, so a
resumed run reproduces the same augmentations bit for bit. Nothing here reads a tensor value on the host, so no op
forces a device sync and the whole pipeline is queued asynchronously behind the training step.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _channel_tensor(values, like: torch.Tensor) -> torch.Tensor:
    """``(1, C, 1, 1)`` float32 tensor on ``like``'s device (no copy when already such a tensor)."""
    t = torch.as_tensor(values, dtype=torch.float32, device=like.device)
    return t.reshape(1, -1, 1, 1)


def normalize(x: torch.Tensor, mean: Sequence[float] | torch.Tensor,
              std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """``(x / 255 − mean) / std`` per channel, as float32.

    Args:
        x: ``(B, C, H, W)`` uint8 (or float in [0, 255]) batch.
        mean, std: ``C`` values in [0, 1] units (``ToTensor`` scale), as sequences or tensors. Pass tensors already on
            ``x``'s device in hot loops: building them from Python lists is a host-to-device copy per call.
    """
    # Three elementwise kernels over the batch; on a GPU this is memory-bound and negligible next to the model.
    return (x.float() / 255.0 - _channel_tensor(mean, x)) / _channel_tensor(std, x)


def random_crop(x: torch.Tensor, size, padding: int, generator: torch.Generator, fill: float = 0) -> torch.Tensor:
    """torchvision ``RandomCrop(size, padding)`` on every sample, with independent offsets.

    Each image is padded by ``padding`` pixels of value ``fill`` on every side, then a ``size`` window is cut at a
    top-left offset drawn uniformly from ``[0, H + 2p − size] × [0, W + 2p − size]``.

    Args:
        x: ``(B, C, H, W)`` batch, uint8 or float (dtype is preserved).
        size: output side ``s`` or ``(h, w)``.
        padding: pixels added on each side before cropping.
        generator: RNG on ``x``'s device.
        fill: value of the padded pixels.
    Returns:
        ``(B, C, h, w)`` batch, contiguous.
    """
    out_h, out_w = _pair(size)
    b, c, h, w = x.shape
    p = int(padding)
    hp, wp = h + 2 * p, w + 2 * p
    if out_h > hp or out_w > wp:
        raise ValueError(f"crop size {(out_h, out_w)} is larger than the padded image {(hp, wp)}")
    if p == 0 and (out_h, out_w) == (h, w):
        return x  # the only offset is (0, 0): identity, no copy
    padded = F.pad(x, (p, p, p, p), value=fill) if p > 0 else x
    ny, nx = hp - out_h + 1, wp - out_w + 1
    # One draw over all ny·nx positions, split into (row, col) offsets: one RNG call, exactly uniform.
    k = torch.randint(0, ny * nx, (b,), generator=generator, device=x.device)
    oy, ox = k // nx, k % nx
    rows = oy[:, None] + torch.arange(out_h, device=x.device)  # (B, h)
    cols = ox[:, None] + torch.arange(out_w, device=x.device)  # (B, w)
    # Why it is fast: a per-sample crop becomes a single gather over the flattened padded image. The flat source
    # index of output pixel (i, j) is rows[i]·Wp + cols[j]; expanding it over channels costs no memory, and the
    # gather is one kernel for the whole batch instead of B slicing calls.
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, out_h * out_w).expand(b, c, out_h * out_w)
    flat = padded.contiguous().reshape(b, c, hp * wp)
    return torch.gather(flat, 2, index).reshape(b, c, out_h, out_w)


def random_hflip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each sample left-right independently with probability ``p``.

    Args:
        x: ``(B, C, H, W)`` batch of any dtype.
        generator: RNG on ``x``'s device.
    """
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    # Why it is fast: flip the whole batch once and pick per sample with a broadcast mask; no host-side branching on
    # which samples flip, so nothing waits for the device.
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def center_crop(x: torch.Tensor, size) -> torch.Tensor:
    """Central ``size`` window (torchvision ``CenterCrop`` offsets); returns ``x`` itself when already that size."""
    out_h, out_w = _pair(size)
    h, w = x.shape[-2:]
    if (out_h, out_w) == (h, w):
        return x
    if out_h > h or out_w > w:
        raise ValueError(f"center crop {(out_h, out_w)} is larger than the image {(h, w)}")
    top = int(round((h - out_h) / 2.0))
    left = int(round((w - out_w) / 2.0))
    # A strided view: no copy until the next op reads it.
    return x[..., top:top + out_h, left:left + out_w]


def rrc_boxes(batch: int, height: int, width: int, generator: torch.Generator, *, scale=(0.08, 1.0),
              ratio=(3 / 4, 4 / 3), attempts: int = 10, device=None) -> torch.Tensor:
    """``(B, 4)`` float boxes ``(top, left, h, w)`` in pixels, torchvision ``RandomResizedCrop.get_params`` per sample.

    For each sample and each of ``attempts`` tries: area ``U(scale)·H·W``, aspect ``exp(U(log ratio))``,
    ``w = round(√(area·aspect))``, ``h = round(√(area/aspect))``; the first try with ``0 < w ≤ W`` and
    ``0 < h ≤ H`` wins and its offset is uniform over the valid positions. Samples with no valid try get the
    central crop with the aspect ratio clamped to ``ratio`` (the whole image when its ratio is inside).
    """
    H, W = int(height), int(width)
    area = H * W
    u = torch.rand(batch, attempts, 2, generator=generator, device=device, dtype=torch.float64)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    w = torch.round(torch.sqrt(target * aspect))  # round half to even, as Python's round()
    h = torch.round(torch.sqrt(target / aspect))
    valid = (w > 0) & (w <= W) & (h > 0) & (h <= H)
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first valid try (0 if none)
    hit = valid.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    # fallback: central crop, aspect ratio clamped to the range
    in_ratio = W / H
    if in_ratio < min(ratio):
        fw, fh = W, int(round(W / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(H * max(ratio))), H
    else:
        fw, fh = W, H
    w = torch.where(hit, w, float(fw))
    h = torch.where(hit, h, float(fh))
    off = torch.rand(batch, 2, generator=generator, device=device, dtype=torch.float64)
    # torch.randint(0, H - h + 1) per sample == floor(U·(H - h + 1))
    top = torch.where(hit, torch.floor(off[:, 0] * (H - h + 1)).clamp(max=H - h), float((H - fh) // 2))
    left = torch.where(hit, torch.floor(off[:, 1] * (W - w + 1)).clamp(max=W - w), float((W - fw) // 2))
    return torch.stack([top, left, h, w], dim=1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size, mode: str = "bicubic") -> torch.Tensor:
    """Crop box ``b`` of every sample and resize it to ``size`` (float32 output, same value range, clamped to the
    input's range for uint8 input).

    Output pixel ``u`` samples the input at ``left + (u + ½)·w/S − ½`` (torchvision's resize with
    ``align_corners=False``). Why it is fast: all B crops-and-resizes are a single ``grid_sample`` over one affine grid
    (``affine_grid`` with a per-sample 2×3 matrix), with no slicing per sample.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    b, c, H, W = x.shape
    top, left, h, w = boxes.to(torch.float32).unbind(1)
    theta = torch.zeros(b, 2, 3, dtype=torch.float32, device=x.device)
    # normalised input coordinate = (w/W)·o + (2·left + w)/W − 1 for normalised output coordinate o
    theta[:, 0, 0] = w / W
    theta[:, 0, 2] = (2 * left + w) / W - 1
    theta[:, 1, 1] = h / H
    theta[:, 1, 2] = (2 * top + h) / H - 1
    grid = F.affine_grid(theta, [b, c, out_h, out_w], align_corners=False)
    out = F.grid_sample(x.float(), grid, mode=mode, padding_mode="border", align_corners=False)
    if x.dtype == torch.uint8:
        out = out.clamp(0, 255)
    return out


def random_resized_crop(x: torch.Tensor, size, generator: torch.Generator, *, scale=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3), mode: str = "bicubic") -> torch.Tensor:
    """torchvision ``RandomResizedCrop(size, scale, ratio)`` on every sample (see :func:`rrc_boxes`); float32 out."""
    boxes = rrc_boxes(x.shape[0], x.shape[-2], x.shape[-1], generator, scale=scale, ratio=ratio, device=x.device)
    return resized_crop(x, boxes, size, mode)
