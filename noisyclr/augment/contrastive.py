"""SimCLR augmentation, batched on the device, and the ``contrastive``, ``unit`` and ``strong_solarize`` views.

The SimCLR CIFAR recipe that Ghosh & Lan pretrained with (simclr-pytorch; docs/methods/simclr_finetune.md,
"1. SimCLR pretraining"), per image::

    RandomResizedCrop(32, scale=(0.08, 1), ratio=(3/4, 4/3), bicubic) → RandomHorizontalFlip
    → RandomApply(ColorJitter(0.8s, 0.8s, 0.8s, 0.2s), p=0.8) → RandomGrayscale(p=0.2) → ToTensor → clip [0, 1]

with colour strength s = 0.5 (jitter 0.4/0.4/0.4/0.1) and **no mean/std normalisation** (the seed README stresses
that the SimCLR inputs were not normalised). The ``contrastive`` view returns float32 in [0, 1] whatever the
dataset's mean/std; the deterministic ``unit`` view (centre crop + ``x/255``) is its evaluation counterpart.
TCL's strong view (``strong_solarize``) is the same recipe at crop scale 0.2-1 with bilinear resampling, plus a
solarisation with p 0.5, normalised with the dataset's mean/std.

Every op works on a whole ``(B, C, H, W)`` batch with per-sample parameters drawn in a few calls from the passed
``torch.Generator``; nothing is read on the host and there is no loop over samples:

* :func:`~noisyclr.augment.basic.random_resized_crop` (the one implementation, shared with the ImageNet-scale
  crops of :func:`~noisyclr.augment.views.crop_ops`): torchvision's box sampler (10 attempts of area ∈ scale·HW
  and log-uniform aspect ratio, first valid attempt, centre-crop fallback) evaluated for all samples and attempts
  at once, then one ``grid_sample`` whose per-sample affine grid maps the output pixel centres onto the box
  (bicubic, border).
* :func:`color_jitter`: brightness, contrast, saturation and hue factors per sample, applied in a per-sample random
  order (torchvision draws ``randperm(4)`` per image): four stages, and in each stage every op is applied only
  where it is the sample's op of that stage (``torch.where``). Brightness / contrast / saturation are the blends of
  :mod:`noisyclr.augment.color_geometry`; hue rotates H in a batched RGB↔HSV round trip.
* :func:`random_grayscale`: the PIL ``L`` weights, repeated over the channels.

Differences from the PIL pipeline (all small, none in the distribution of crops, orders or factors): bicubic
resampling uses PyTorch's kernel (a = −0.75; PIL uses a = −0.5) and may read pixels just outside the crop box
(PIL clamps at the box edge); colour ops run in float and are not re-quantised to uint8 between ops; hue is shifted
in float HSV (PIL: 8-bit HSV).
"""

from __future__ import annotations

from typing import Sequence

import torch

from noisyclr.augment import color_geometry as cg
# the random resized crop lives with the other primitives (basic) and ops (views); re-exported here
from noisyclr.augment.basic import random_resized_crop, resized_crop, rrc_boxes
from noisyclr.augment.views import (
    CenterCrop, Normalize, RandomHFlip, RandomResizedCrop, View, _check_stats, check_scale, register_view,
)

__all__ = [
    "rrc_boxes", "resized_crop", "random_resized_crop", "rgb_to_hsv", "hsv_to_rgb", "adjust_hue", "color_jitter",
    "random_grayscale", "random_solarize", "RandomResizedCrop", "ColorDistortion", "RandomSolarize", "ToUnit",
    "make_contrastive_view", "make_strong_solarize_view", "make_unit_view",
]


# ---------------------------------------------------------------------------------------------------------------------
# colour


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] → HSV in [0, 1] (hue as a fraction of a turn; grey pixels get h = s = 0)."""
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    grey = delta == 0
    safe = torch.where(grey, torch.ones_like(delta), delta)
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    # hue sector by which channel is the maximum (ties resolved r, then g, then b as in colorsys)
    h = torch.where(maxc == r, (g - b) / safe, torch.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = torch.where(grey, torch.zeros_like(h), torch.remainder(h / 6.0, 1.0))
    return torch.stack([h, s, maxc], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`: ``(B, 3, H, W)`` HSV in [0, 1] → RGB in [0, 1].

    Branch-free form: channel ``n ∈ (5, 3, 1)`` (r, g, b) is ``v − v·s·clamp(min(k, 4 − k), 0, 1)`` with
    ``k = (n + 6h) mod 6`` — the same values as the six-sector table, in a few broadcast kernels.
    """
    h, s, v = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h, 6.0)
    return v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


def adjust_hue(x: torch.Tensor, shift) -> torch.Tensor:
    """Rotate the hue of every sample by ``shift`` (``(B,)``, fraction of a turn in [−0.5, 0.5]).

    ``x`` is float RGB in [0, 255] (or uint8); returns float32 in [0, 255]. 1-channel input is returned as float.
    """
    if x.shape[1] != 3:
        return x.float()
    shift = cg.per_sample(shift, x.shape[0], x.device).view(-1, 1, 1)
    hsv = rgb_to_hsv(x.float().clamp(0, 255) / 255.0)
    hsv = torch.stack([torch.remainder(hsv[:, 0] + shift, 1.0), hsv[:, 1], hsv[:, 2]], dim=1)
    return hsv_to_rgb(hsv) * 255.0


def color_jitter(x: torch.Tensor, generator: torch.Generator, *, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.4, hue: float = 0.1, p: float = 0.8) -> torch.Tensor:
    """``RandomApply(ColorJitter(brightness, contrast, saturation, hue), p)`` per sample, float in [0, 255] → float.

    Factors: brightness / contrast / saturation ``U(1 − v, 1 + v)``, hue shift ``U(−h, h)``; the four ops run in a
    per-sample random order (``argsort`` of uniforms: a uniform permutation). A sample not selected by ``p`` is
    returned unchanged. On 1-channel images saturation and hue are the identity.

    Why it is fast: brightness, contrast and saturation are all ``blend(x, degenerate, f)`` (degenerate = black, the
    mean grey level, the grey image), so each of the four stages does ONE blend with a per-sample degenerate image
    and factor, plus one hue rotation, instead of four ops per stage.
    """
    b = x.shape[0]
    dev = x.device
    apply = torch.rand(b, generator=generator, device=dev) < p
    u = torch.rand(b, 4, generator=generator, device=dev)
    order = torch.rand(b, 4, generator=generator, device=dev).argsort(dim=1)
    f_b = 1.0 - brightness + 2 * brightness * u[:, 0]
    f_c = 1.0 - contrast + 2 * contrast * u[:, 1]
    f_s = 1.0 - saturation + 2 * saturation * u[:, 2]
    shift = -hue + 2 * hue * u[:, 3]
    rgb = x.shape[1] == 3
    out = x.float()
    for stage in range(4):
        op = order[:, stage]
        op4 = op.view(-1, 1, 1, 1)
        grey = cg.grayscale(out)  # (B, 1, H, W) unrounded PIL L
        mean = grey.mean(dim=(1, 2, 3), keepdim=True)
        degenerate = torch.where(op4 == 0, torch.zeros_like(mean), torch.where(op4 == 1, mean, grey))
        factor = torch.where(op == 0, f_b, torch.where(op == 1, f_c, torch.where(op == 2, f_s, torch.ones_like(f_b))))
        blend_ops = (op4 < 2) if not rgb else (op4 < 3)
        out = torch.where(blend_ops, cg.blend(out, degenerate, factor), out)
        if rgb and hue > 0:
            out = torch.where(op4 == 3, adjust_hue(out, shift), out)
    return torch.where(apply.view(-1, 1, 1, 1), out, x.float())


def random_grayscale(x: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """``RandomGrayscale(p)``: the PIL ``L`` grey (float, unrounded) repeated over the 3 channels; float out."""
    pick = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    if x.shape[1] != 3:
        return x.float()
    grey = cg.grayscale(x).expand_as(x)
    return torch.where(pick.view(-1, 1, 1, 1), grey, x.float())


# ---------------------------------------------------------------------------------------------------------------------
# ops and views


class ColorDistortion:
    """Op: SimCLR's colour distortion of strength ``s``: jitter ``(0.8s, 0.8s, 0.8s, 0.2s)`` with ``p_jitter``,
    then grayscale with ``p_gray``."""

    def __init__(self, strength: float = 0.5, p_jitter: float = 0.8, p_gray: float = 0.2):
        self.strength, self.p_jitter, self.p_gray = strength, p_jitter, p_gray

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = self.strength
        x = color_jitter(x, generator, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s,
                         p=self.p_jitter)
        return random_grayscale(x, generator, p=self.p_gray)


def random_solarize(x: torch.Tensor, generator: torch.Generator, threshold: float = 128.0, p: float = 0.5
                    ) -> torch.Tensor:
    """``RandomSolarize(threshold, p)`` per sample: values ``≥ threshold`` become ``255 − v``; float in [0, 255] out.

    torchvision applies it to the jittered uint8 image; here the jittered values are float (not re-quantised), so a
    value in (127, 128) stays unsolarised where PIL would have rounded it to 128 first.
    """
    pick = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    x = x.float()
    return torch.where(pick.view(-1, 1, 1, 1) & (x >= threshold), 255.0 - x, x)


class RandomSolarize:
    """Op: :func:`random_solarize` with ``threshold`` and ``p``."""

    def __init__(self, threshold: float = 128.0, p: float = 0.5):
        self.threshold, self.p = threshold, p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_solarize(x, generator, self.threshold, self.p)


class ToUnit:
    """Op: values in [0, 255] (uint8 or float) → float32 in [0, 1], clipped (``ToTensor`` + simclr-pytorch
    ``Clip``)."""

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return (x.float() * (1.0 / 255.0)).clamp_(0.0, 1.0)


def make_contrastive_view(*, image_size, flip: bool = True, crop_scale: Sequence[float] = (0.08, 1.0),
                          color_strength: float = 0.5, p_jitter: float = 0.8, p_gray: float = 0.2,
                          crop: int | None = None, **_) -> View:
    """The SimCLR view: random resized crop, flip, colour distortion, output float32 in [0, 1] (no normalisation).

    The crop is resized to ``crop`` when given (an ImageNet-scale source; the whole image is the crop's frame), else
    to ``image_size``. ``mean``/``std`` (passed to every factory) are deliberately ignored; ``padding`` too.
    """
    ops = [RandomResizedCrop(image_size if crop is None else int(crop), check_scale(crop_scale, "crop_scale"))]
    if flip:
        ops.append(RandomHFlip(0.5))
    ops += [ColorDistortion(color_strength, p_jitter, p_gray), ToUnit()]
    return View("contrastive", ops, random=True)


def make_strong_solarize_view(*, mean, std, image_size, flip: bool = True, crop_scale: Sequence[float] = (0.2, 1.0),
                              crop: int | None = None, **_) -> View:
    """TCL's strong view (docs/methods/tcl.md, "Views"): ``RandomResizedCrop(scale=crop_scale)`` (bilinear, to
    ``crop`` when given, else ``image_size``) → flip → ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` with p 0.8 → grayscale
    p 0.2 → solarize (128) p 0.5 → normalise.

    Unlike the ``contrastive`` view it normalises with the dataset's ``mean``/``std``; ``crop_scale`` defaults to
    TCL's ``resized_crop_scale: 0.2``.
    """
    _check_stats(mean, std)
    size = image_size if crop is None else int(crop)
    ops = [RandomResizedCrop(size, check_scale(crop_scale, "crop_scale"), mode="bilinear")]
    if flip:
        ops.append(RandomHFlip(0.5))
    ops += [ColorDistortion(0.5, 0.8, 0.2), RandomSolarize(128.0, 0.5), Normalize(mean, std)]
    return View("strong_solarize", ops, random=True)


def make_unit_view(*, image_size, crop: int | None = None, **_) -> View:
    """Evaluation view of unnormalised models: centre crop to ``crop`` (default ``image_size``) and ``x/255``
    (float32 in [0, 1])."""
    return View("unit", [CenterCrop(image_size if crop is None else int(crop)), ToUnit()], random=False)


register_view("contrastive", make_contrastive_view)
register_view("unit", make_unit_view)
register_view("strong_solarize", make_strong_solarize_view)
