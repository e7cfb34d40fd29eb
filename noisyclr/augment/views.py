"""Named augmentation views: how a method asks the data loader for augmented batches.

A method declares the views it needs as a tuple of names, one entry per augmented copy of each batch, e.g.::

    class DivideMix(Method):
        views = ("weak", "weak")          # two independently augmented weak copies of the same images
    class PLReMix(Method):
        views = ("weak", "weak", "strong", "strong")

The loader builds each distinct name once with :func:`make_views` and, for every batch of uint8 images gathered on
the device, calls ``view(x_uint8, generator)`` once per entry of the tuple, in order, with the loader's single
device generator. Because the generator advances between calls, repeated names give independent augmentations. The
``test`` view (normalise only) is what evaluation and the per-epoch eval-train pass use.

Built-in names: ``test`` and ``weak``. Other modules add names (e.g. ``strong`` AutoAugment, SimCLR ``contrastive``)
with :func:`register_view` without editing this file. A view factory is called as
``factory(mean=..., std=..., image_size=..., padding=..., flip=..., **options)`` and returns a :class:`View`;
factories should accept and ignore options they do not use.

ImageNet-scale images (docs/data.md, "Views at ImageNet scale"): the sources decode every image to one square
(Clothing1M 256², WebVision 320²) and the options ``crop`` / ``crop_mode`` / ``resized_scale`` make every train view
start with :func:`crop_ops` (``RandomCrop(crop)`` without padding, or ``RandomResizedCrop(crop)``) and the ``test``
view centre-crop to ``crop``. Without ``crop`` (the default) every view is exactly what it was.
"""

from __future__ import annotations

import difflib
from typing import Callable, Iterable, Sequence

import torch

from noisyclr.augment.basic import center_crop, normalize, random_crop, random_hflip, random_resized_crop
from noisyclr.errors import UserError

Op = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


class View:
    """A named augmentation pipeline: ``view(x_uint8, generator) -> float32`` normalised batch.

    Args:
        name: the registered name.
        ops: callables ``op(x, generator) -> x`` applied in order; deterministic ops ignore the generator.
        random: whether any op draws random numbers (then a generator is required).
    """

    def __init__(self, name: str, ops: Sequence[Op], *, random: bool):
        self.name = name
        self.ops = list(ops)
        self.random = random

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.random and generator is None:
            # Falling back to the global RNG would make resumed runs diverge, so refuse.
            raise ValueError(f"view '{self.name}' is random and needs an explicit torch.Generator")
        for op in self.ops:
            x = op(x, generator)
        return x

    def __repr__(self) -> str:
        return f"View({self.name!r}, ops={len(self.ops)}, random={self.random})"


class Normalize:
    """Op: uint8 → float32 ``(x/255 − mean)/std``; caches mean/std per device so hot loops do no host copies."""

    def __init__(self, mean, std):
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        stats = self._cache.get(x.device)
        if stats is None:  # first call on this device: one copy, then reused
            stats = self._cache[x.device] = (self.mean.to(x.device), self.std.to(x.device))
        return normalize(x, *stats)


class RandomCrop:
    """Op: :func:`random_crop` with fixed ``size``, ``padding`` and ``fill``."""

    def __init__(self, size, padding: int, fill: float = 0):
        self.size, self.padding, self.fill = size, padding, fill

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_crop(x, self.size, self.padding, generator, fill=self.fill)


class RandomHFlip:
    """Op: :func:`random_hflip` with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_hflip(x, generator, p=self.p)


class CenterCrop:
    """Op: :func:`center_crop` to ``size`` (deterministic)."""

    def __init__(self, size):
        self.size = size

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return center_crop(x, self.size)


class RandomResizedCrop:
    """Op: :func:`~noisyclr.augment.basic.random_resized_crop` to ``size`` with ``scale`` and ``ratio`` (bicubic as
    simclr-pytorch, or ``mode="bilinear"``, torchvision's default).

    Float32 out, unless ``uint8`` is set and the input is uint8: then the crop is rounded back to uint8, as a PIL
    crop is an 8-bit image again (the ImageNet-scale train views of :func:`crop_ops`, whose later ops work on uint8).
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), mode: str = "bicubic", uint8: bool = False):
        self.size, self.scale, self.ratio, self.mode, self.uint8 = size, tuple(scale), tuple(ratio), mode, uint8

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = random_resized_crop(x, self.size, generator, scale=self.scale, ratio=self.ratio, mode=self.mode)
        if self.uint8 and x.dtype == torch.uint8:
            out = out.round_().to(torch.uint8)  # already clamped to [0, 255] for uint8 input
        return out


def _check_stats(mean, std) -> None:
    if len(mean) != len(std) or any(float(s) <= 0 for s in std):
        raise UserError(f"normalisation mean {list(mean)} and std {list(std)} must have equal length and std > 0")


# ---------------------------------------------------------------------------------------------------------------------
# the crop stage of the train views (ImageNet-scale sources)

CROP_MODES = ("random", "resized")
RESIZED_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop default (DivideMix WebVision's RRC(299))


def check_scale(scale, what: str = "resized_scale") -> tuple[float, float]:
    """``scale`` as ``(min, max)`` with ``0 < min <= max <= 1`` (ValueError otherwise)."""
    lo, hi = (float(v) for v in scale)
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"{what} must satisfy 0 < min <= max <= 1, got {list(scale)}")
    return lo, hi


def check_crop(crop: int | None, image_shape, key: str = "dataset.crop") -> None:
    """A one-line UserError when the train / test crop ``crop`` does not fit in images of ``image_shape`` (H, W)."""
    if crop is None:
        return
    h, w = (int(v) for v in image_shape)
    if int(crop) < 1 or int(crop) > min(h, w):
        raise UserError(f"{key}={crop} does not fit in the {h}x{w} images of this dataset; the crop must be between 1 "
                        f"and {min(h, w)}, e.g. {key}={min(h, w)} (or null: no crop)")


def crop_ops(*, image_size, padding: int = 4, flip: bool = True, crop: int | None = None, crop_mode: str = "random",
             resized_scale=RESIZED_SCALE, **_) -> list[Op]:
    """The crop and flip every train view starts with, on uint8 (4x less memory traffic than float32).

    * ``crop=None`` (CIFAR and the other small-image sets): ``RandomCrop(image_size, padding)``, the pad-and-crop;
    * ``crop_mode="random"``: ``RandomCrop(crop)`` with **no** padding (``padding`` is not used): on a source decoded
      to 256² this is Clothing1M's Resize(256) + RandomCrop(224), on 320² PLReMix WebVision's RandomCrop(299);
    * ``crop_mode="resized"``: ``RandomResizedCrop(crop, scale=resized_scale)``, ratio 3/4-4/3, bilinear as
      torchvision, rounded back to uint8 (DivideMix WebVision's RRC(299); PLReMix's multi-crops);

    then a horizontal flip with p 0.5 when ``flip``. Other options are ignored, so a factory passes its own on.
    """
    if crop is None:
        ops: list[Op] = [RandomCrop(image_size, padding)]
    elif crop_mode == "random":
        ops = [RandomCrop(int(crop), 0)]
    elif crop_mode == "resized":
        ops = [RandomResizedCrop(int(crop), check_scale(resized_scale), mode="bilinear", uint8=True)]
    else:
        raise ValueError(f"crop_mode must be one of {', '.join(CROP_MODES)}, got {crop_mode!r}")
    if flip:
        ops.append(RandomHFlip(0.5))
    return ops


def make_test_view(*, mean, std, image_size, crop: int | None = None, **_) -> View:
    """Test / eval-train transform: centre crop to ``crop`` (default ``image_size``, a no-op at the native size) and
    normalise. With ``crop`` this is Clothing1M's Resize(256) + CenterCrop(224) on a source decoded to 256²."""
    _check_stats(mean, std)
    return View("test", [CenterCrop(image_size if crop is None else int(crop)), Normalize(mean, std)], random=False)


def make_weak_view(*, mean, std, image_size, padding: int = 4, flip: bool = True, **options) -> View:
    """Weak transform: :func:`crop_ops` (``RandomCrop(image_size, padding)``, or the ``crop`` of ``options``) +
    (optional) horizontal flip + normalise."""
    _check_stats(mean, std)
    # normalisation comes last: everything before it runs on uint8
    ops = crop_ops(image_size=image_size, padding=padding, flip=flip, **options) + [Normalize(mean, std)]
    return View("weak", ops, random=True)


VIEWS: dict[str, Callable[..., View]] = {"test": make_test_view, "weak": make_weak_view}


def register_view(name: str, factory: Callable[..., View], *, overwrite: bool = False) -> None:
    """Add a view factory under ``name`` (see the module docstring for the factory signature)."""
    if name in VIEWS and not overwrite and VIEWS[name] is not factory:
        raise ValueError(f"view '{name}' is already registered; pass overwrite=True to replace it")
    VIEWS[name] = factory


def build_view(name: str, *, mean, std, image_size, padding: int = 4, flip: bool = True, **options) -> View:
    """Build the registered view ``name`` for images of side ``image_size`` normalised with ``mean``/``std``.

    ``padding`` is the pad-and-crop margin of the weak view (4 for CIFAR, e.g. 1 for 8×8 digits); extra
    ``options`` go to the factory. An unknown name raises :class:`UserError` listing the registered names.
    """
    if name not in VIEWS:
        close = difflib.get_close_matches(str(name), list(VIEWS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UserError(f"unknown augmentation view '{name}'; registered views: {', '.join(VIEWS)}.{hint}")
    return VIEWS[name](mean=mean, std=std, image_size=image_size, padding=padding, flip=flip, **options)


def make_views(names: Iterable[str], **kwargs) -> dict[str, View]:
    """One :class:`View` per distinct name in ``names`` (a method's ``views`` tuple), built with ``kwargs``."""
    return {name: build_view(name, **kwargs) for name in dict.fromkeys(names)}
