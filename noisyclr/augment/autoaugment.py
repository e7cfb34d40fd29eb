"""Batched AutoAugment and RandAugment ops, and the ``strong``, ``strong_imagenet`` and ``randaug`` views.

Both ops run on a whole uint8 batch on its device. Every sample draws its own sub-policy / op list, application
coins, signs and magnitudes from the explicitly passed ``torch.Generator`` (one ``rand``/``randint`` call per kind of
draw for the whole batch, never the global RNG), and no value is read on the host. The dispatch loops over the ~15
op *types*, never over samples: for each stage every sample has exactly one op (``Identity`` when its coin says no),
and :func:`apply_op_batch` applies all types at once in three fused passes:

1. geometry: one per-sample affine matrix (identity for non-geometric samples) and one nearest gather;
2. per-channel lookup tables (Invert, Posterize, Solarize, AutoContrast, Equalize): one ``(B, C, 256)`` table
   (identity rows elsewhere), selected per sample with ``torch.where``, and one gather;
3. blends (Brightness, Contrast, Color, Sharpness): one per-sample degenerate image and factor (1 elsewhere, which
   returns the pixel exactly) and one blend.

Semantics of the individual ops: :mod:`noisyclr.augment.color_geometry` (PIL's).

AutoAugment follows ``torchvision.transforms.AutoAugment`` (policies, 10-bin magnitude tables, random sign with
p = 0.5 for signed ops, sub-policy uniformly at random, op ``i`` applied when ``u_i < p_i``; torchvision's
``u_i <= p_i`` differs only on a zero-probability event). Differences from the PIL port used by PLReMix /
DivideMix-style code (DeepVoltaire's ``CIFAR10Policy``): that port shears with bicubic interpolation (here nearest,
as torchvision), translates by the unrounded ``150/331·side·level/9`` pixels (here ``int()``-truncated, as
torchvision) and its Solarize table runs from 256 (here 255) to 0.

RandAugment follows PLReMix's ``--aug randaug`` (``data/rand_augment.py``, from FixMatch-pytorch): ``num_ops = 4``
ops drawn uniformly *with replacement* from 14 (AutoContrast, Brightness, Color, Contrast, Equalize, Identity,
Posterize, Rotate, Sharpness, ShearX, ShearY, Solarize, TranslateX, TranslateY), each with a magnitude drawn
uniformly from its range (see :data:`RANDAUG_OPS`), then Cutout of side ``U(0, 0.5)·W`` filled with
(125, 123, 114). Geometric ops fill with 0 (PIL's default there).
"""

from __future__ import annotations

from typing import Sequence

import torch

from noisyclr.augment import color_geometry as cg
from noisyclr.augment.views import VIEWS, Normalize, View, _check_stats, crop_ops, register_view

__all__ = [
    "OPS", "GEOMETRIC_OPS", "LUT_OPS", "BLEND_OPS", "CIFAR10_POLICY", "IMAGENET_POLICY", "POLICIES",
    "RANDAUG_OPS", "magnitude_bins", "apply_op_batch", "AutoAugment", "RandAugment",
    "make_strong_view", "make_strong_imagenet_view", "make_randaug_view",
]

# Op type ids used by the batched dispatch (index 0 = Identity).
OPS: tuple[str, ...] = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
    "Invert", "Posterize", "Solarize", "AutoContrast", "Equalize",
    "Brightness", "Color", "Contrast", "Sharpness",
)
_ID = {name: i for i, name in enumerate(OPS)}
GEOMETRIC_OPS = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"})
LUT_OPS = frozenset({"Invert", "Posterize", "Solarize", "AutoContrast", "Equalize"})
BLEND_OPS = frozenset({"Brightness", "Color", "Contrast", "Sharpness"})

# (op, probability, magnitude bin or None), two per sub-policy; torchvision's tables (AutoAugment paper, appendix).
CIFAR10_POLICY: tuple = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)

IMAGENET_POLICY: tuple = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)

POLICIES = {"cifar10": CIFAR10_POLICY, "imagenet": IMAGENET_POLICY}

# PLReMix / FixMatch RandAugment: (op, low, high); the magnitude is low + (high − low)·U(0, 1).
RANDAUG_OPS: tuple = (
    ("AutoContrast", 0.0, 1.0),
    ("Brightness", 0.05, 0.95),
    ("Color", 0.05, 0.95),
    ("Contrast", 0.05, 0.95),
    ("Equalize", 0.0, 1.0),
    ("Identity", 0.0, 1.0),
    ("Posterize", 4.0, 8.0),   # bits = max(1, int(v))
    ("Rotate", -30.0, 30.0),   # degrees
    ("Sharpness", 0.05, 0.95),
    ("ShearX", -0.3, 0.3),
    ("ShearY", -0.3, 0.3),
    ("Solarize", 0.0, 256.0),  # threshold
    ("TranslateX", -0.3, 0.3),  # fraction of the width
    ("TranslateY", -0.3, 0.3),  # fraction of the height
)


def magnitude_bins(op: str, num_bins: int = 10, height: int = 32, width: int = 32) -> tuple[list[float], bool]:
    """torchvision's AutoAugment magnitude table of ``op``: (values of the ``num_bins`` bins, signed).

    ShearX/Y ``linspace(0, 0.3)``; TranslateX/Y ``int(linspace(0, 150/331·W (or H)))`` pixels; Rotate
    ``linspace(0, 30)`` degrees; Brightness/Color/Contrast/Sharpness ``linspace(0, 0.9)`` (factor ``1 ± m``);
    Posterize ``8 − round(i / ((bins−1)/4))`` bits; Solarize ``linspace(255, 0)``; the others have no magnitude (0).
    Signed ops get a random sign per sample.
    """
    lin = lambda lo, hi: torch.linspace(lo, hi, num_bins, dtype=torch.float32).tolist()  # noqa: E731
    if op in ("ShearX", "ShearY"):
        return lin(0.0, 0.3), True
    if op == "TranslateX":  # torchvision: translate=[int(magnitude), 0], the sign applied before int()
        return [float(int(v)) for v in lin(0.0, 150.0 / 331.0 * width)], True
    if op == "TranslateY":
        return [float(int(v)) for v in lin(0.0, 150.0 / 331.0 * height)], True
    if op == "Rotate":
        return lin(0.0, 30.0), True
    if op in BLEND_OPS:
        return lin(0.0, 0.9), True
    if op == "Posterize":
        return (8 - (torch.arange(num_bins) / ((num_bins - 1) / 4)).round().int()).float().tolist(), False
    if op == "Solarize":
        return lin(255.0, 0.0), False
    if op in ("AutoContrast", "Equalize", "Invert", "Identity"):
        return [0.0] * num_bins, False
    raise ValueError(f"unknown AutoAugment op {op!r}")


def _present_ops(x_ops: Sequence[str]) -> frozenset:
    return frozenset(x_ops) | {"Identity"}


def apply_op_batch(x: torch.Tensor, op: torch.Tensor, param: torch.Tensor, *, ops: Sequence[str] = OPS,
                   fill=0) -> torch.Tensor:
    """Apply to every sample ``b`` the single op ``OPS[op[b]]`` with parameter ``param[b]``.

    Args:
        x: ``(B, C, H, W)`` uint8 batch.
        op: ``(B,)`` int64 indices into :data:`OPS` (0 = Identity).
        param: ``(B,)`` float parameter in the op's own units: ShearX/Y factor, TranslateX/Y pixels (right/down
            positive), Rotate degrees (counter-clockwise), Posterize bits, Solarize threshold, blend factor
            (Brightness/Color/Contrast/Sharpness; 1 = unchanged); ignored by the others.
        ops: the op names that may occur (a static superset, e.g. from a policy table): passes for types that cannot
            occur are skipped without looking at ``op``'s values.
        fill: fill colour of the geometric ops.
    Returns:
        ``(B, C, H, W)`` uint8 batch; samples whose op is Identity are returned bit for bit.
    """
    names = _present_ops(ops)
    unknown = names - set(OPS)
    if unknown:
        raise ValueError(f"unknown augmentation ops {sorted(unknown)}; known: {list(OPS)}")
    b, c, h, w = x.shape
    dev = x.device
    param = param.to(dev)

    def is_(name):
        return (op == _ID[name]).reshape(b)

    if names & GEOMETRIC_OPS:
        cdt = torch.float32 if dev.type == "mps" else torch.float64
        p = param.to(cdt)
        zero = torch.zeros_like(p)
        mat = cg.identity_matrix(b, dev, cdt)
        builders = {
            "ShearX": lambda: cg.shear_x_matrix(p),
            "ShearY": lambda: cg.shear_y_matrix(p),
            "TranslateX": lambda: cg.translate_matrix(p, zero),
            "TranslateY": lambda: cg.translate_matrix(zero, p),
            "Rotate": lambda: cg.rotate_matrix(p, h, w),
        }
        for name in sorted(names & GEOMETRIC_OPS):
            mat = torch.where(is_(name)[:, None], builders[name](), mat)
        x = cg.affine_nearest(x, mat, fill)

    if names & LUT_OPS:
        levels = x.long()  # shared by the Equalize histogram and the final gather
        lut = cg.identity_lut(b, dev).expand(b, c, 256)
        builders = {
            "Invert": lambda: cg.invert_lut(b, dev),
            "Posterize": lambda: cg.posterize_lut(param.clamp(0, 8).long()),
            "Solarize": lambda: cg.solarize_lut(param),
            "AutoContrast": lambda: cg.autocontrast_lut(x),
            "Equalize": lambda: cg.equalize_lut(x, levels),
        }
        for name in sorted(names & LUT_OPS):
            lut = torch.where(is_(name)[:, None, None], builders[name](), lut)
        x = cg.apply_lut(x, lut, levels)

    if names & BLEND_OPS:
        degenerate = torch.zeros((b, 1, 1, 1), dtype=torch.float32, device=dev)  # Brightness: black
        builders = {
            "Color": lambda: cg.color_degenerate(x),
            "Contrast": lambda: cg.contrast_degenerate(x),
            "Sharpness": lambda: cg.sharpness_degenerate(x),
        }
        for name in sorted((names & BLEND_OPS) - {"Brightness"}):
            degenerate = torch.where(is_(name)[:, None, None, None], builders[name](), degenerate)
        is_blend = torch.zeros(b, dtype=torch.bool, device=dev)
        for name in names & BLEND_OPS:
            is_blend = is_blend | is_(name)
        factor = torch.where(is_blend, param.float(), torch.ones((), device=dev))
        x = cg.blend(x, degenerate, factor)
    return x


def _as_uint8(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.uint8 else x.round().clamp(0, 255).to(torch.uint8)


def _restore_dtype(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return y if like.dtype == torch.uint8 else y.to(like.dtype)


class AutoAugment:
    """Op: batched AutoAugment with torchvision's policies and magnitude tables, per-sample randomness.

    Per sample: a sub-policy uniformly from the 25; each of its two ops applied, in order, when ``U(0,1) < p``;
    its magnitude is the bin's value from :func:`magnitude_bins`, negated with probability 0.5 for signed ops.

    Args:
        policy: ``"cifar10"`` (CIFAR, Animal-10N) or ``"imagenet"`` (Tiny-ImageNet, Clothing1M, WebVision).
        fill: fill colour of the geometric ops (the PLReMix / DivideMix-style ports use (128, 128, 128)).

    Call as ``op(x, generator)`` on a ``(B, C, H, W)`` uint8 (or float in [0, 255], rounded to integer levels;
    the dtype is kept) batch with ``C`` = 1 or 3.
    """

    def __init__(self, policy: str = "cifar10", fill=(128, 128, 128)):
        policy = str(policy).lower()
        if policy not in POLICIES:
            raise ValueError(f"unknown AutoAugment policy {policy!r}; choose from {sorted(POLICIES)}")
        self.policy = policy
        self.fill = fill
        self.sub_policies = POLICIES[policy]
        self._stage_ops = [frozenset(sp[k][0] for sp in self.sub_policies) for k in range(2)]
        self._tables: dict = {}

    def tables(self, height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                                torch.Tensor]:
        """``(25, 2)`` op ids, probabilities, magnitudes, signed flags and bases (1 for blend factors, else 0),
        cached per image size and device so the hot loop does no host-to-device copy."""
        key = (height, width, torch.device(device))
        if key not in self._tables:
            ids, probs, mags, signed, base = [], [], [], [], []
            for sp in self.sub_policies:
                for name, p, level in sp:
                    values, sgn = magnitude_bins(name, 10, height, width)
                    ids.append(_ID[name])
                    probs.append(p)
                    mags.append(values[level] if level is not None else 0.0)
                    signed.append(sgn)
                    base.append(1.0 if name in BLEND_OPS else 0.0)
            shape = (len(self.sub_policies), 2)
            self._tables[key] = (
                torch.tensor(ids, dtype=torch.long).reshape(shape).to(device),
                torch.tensor(probs, dtype=torch.float32).reshape(shape).to(device),
                torch.tensor(mags, dtype=torch.float64).reshape(shape).to(device),
                torch.tensor(signed, dtype=torch.bool).reshape(shape).to(device),
                torch.tensor(base, dtype=torch.float64).reshape(shape).to(device),
            )
        return self._tables[key]

    def sample_params(self, batch: int, height: int, width: int, generator: torch.Generator,
                      device=None) -> dict[str, torch.Tensor]:
        """Draw every sample's randomness: ``sub_policy`` ``(B,)``, and per stage ``op`` ``(B, 2)`` (indices into
        :data:`OPS`, 0 where the coin said no) and ``param`` ``(B, 2)`` (the op's parameter in
        :func:`apply_op_batch` units: blend factor ``1 ± m``, signed degrees / shear / pixels, bits, threshold).

        Three RNG calls, in this order: sub-policy (``randint``), coins (``rand``), signs (``randint``).
        """
        dev = torch.device(device) if device is not None else generator.device
        ids, probs, mags, signed, base = self.tables(height, width, dev)
        sub = torch.randint(0, len(self.sub_policies), (batch,), generator=generator, device=dev)
        coins = torch.rand(batch, 2, generator=generator, device=dev)
        negative = torch.randint(0, 2, (batch, 2), generator=generator, device=dev) == 0
        op = torch.where(coins < probs[sub], ids[sub], 0)  # 0 = Identity
        mag = torch.where(signed[sub] & negative, -mags[sub], mags[sub])
        return {"sub_policy": sub, "op": op, "param": base[sub] + mag}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Apply drawn ``params`` (see :meth:`sample_params`) to the batch ``x``."""
        y = _as_uint8(x)
        for k in range(2):
            y = apply_op_batch(y, params["op"][:, k], params["param"][:, k], ops=self._stage_ops[k], fill=self.fill)
        return _restore_dtype(y, x)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.apply(x, self.sample_params(b, h, w, generator, x.device))

    def __repr__(self) -> str:
        return f"AutoAugment(policy={self.policy!r}, fill={self.fill})"


class RandAugment:
    """Op: batched RandAugment as PLReMix's ``--aug randaug`` (FixMatch-pytorch ``RandAugment(n, m)``).

    Per sample: ``num_ops`` ops drawn uniformly with replacement from :data:`RANDAUG_OPS`, each applied with a
    magnitude ``low + (high − low)·u``; then Cutout (:func:`~noisyclr.augment.color_geometry.cutout`) of side
    ``U(0, cutout)·W`` pixels. Op parameters as in the reference: Brightness/Color/Contrast/Sharpness factor in
    [0.05, 0.95]; Posterize ``max(1, int(v))`` bits, ``v`` in [4, 8]; Rotate ±30°; ShearX/Y ±0.3; Solarize threshold
    in [0, 256]; TranslateX/Y ±0.3 of the side (PIL's direction: positive moves the content left/up).

    Args:
        num_ops: ops per sample (PLReMix: 4).
        magnitude: ``"random"`` (a fresh ``u ~ U(0, 1)`` per op and sample, as PLReMix) or a fixed ``u`` in [0, 1].
        cutout: maximum Cutout side as a fraction of the width (0 disables Cutout).
        fill: fill colour of the geometric ops (0, PIL's default in the reference).
        cutout_fill: Cutout colour (the reference's (125, 123, 114)).
    """

    def __init__(self, num_ops: int = 4, magnitude="random", cutout: float = 0.5, fill=0,
                 cutout_fill=(125, 123, 114)):
        if magnitude != "random" and not 0.0 <= float(magnitude) <= 1.0:
            raise ValueError(f"RandAugment magnitude must be 'random' or a fraction in [0, 1], got {magnitude!r}")
        self.num_ops = int(num_ops)
        self.magnitude = magnitude
        self.cutout = float(cutout)
        self.fill = fill
        self.cutout_fill = cutout_fill
        self._names = tuple(name for name, _, _ in RANDAUG_OPS)
        self._tables: dict = {}

    def _table(self, device):
        key = torch.device(device)
        if key not in self._tables:
            self._tables[key] = (
                torch.tensor([_ID[n] for n, _, _ in RANDAUG_OPS], dtype=torch.long).to(device),
                torch.tensor([lo for _, lo, _ in RANDAUG_OPS], dtype=torch.float64).to(device),
                torch.tensor([hi for _, _, hi in RANDAUG_OPS], dtype=torch.float64).to(device),
            )
        return self._tables[key]

    def sample_params(self, batch: int, height: int, width: int, generator: torch.Generator,
                      device=None) -> dict[str, torch.Tensor]:
        """Draw every sample's randomness: ``op`` and ``param`` ``(B, num_ops)`` (indices into :data:`OPS` and the
        parameter in :func:`apply_op_batch` units), and the Cutout ``size``, ``cy``, ``cx`` ``(B,)`` in pixels.

        RNG calls, in this order: op choice (``randint``), magnitudes (``rand``, only when ``magnitude="random"``),
        Cutout side (``rand``), Cutout centre (``rand``), the last two only when ``cutout > 0``.
        """
        dev = torch.device(device) if device is not None else generator.device
        ids, lo, hi = self._table(dev)
        choice = torch.randint(0, len(RANDAUG_OPS), (batch, self.num_ops), generator=generator, device=dev)
        if self.magnitude == "random":
            u = torch.rand(batch, self.num_ops, generator=generator, device=dev, dtype=torch.float64)
        else:
            u = torch.full((batch, self.num_ops), float(self.magnitude), device=dev, dtype=torch.float64)
        op = ids[choice]
        v = lo[choice] + (hi[choice] - lo[choice]) * u
        # Reference units -> apply_op_batch units.
        param = torch.where(op == _ID["Posterize"], torch.clamp(torch.trunc(v), min=1), v)
        param = torch.where(op == _ID["TranslateX"], -v * width, param)  # PIL (1, 0, v·W, ...) moves content left
        param = torch.where(op == _ID["TranslateY"], -v * height, param)
        out = {"op": op, "param": param}
        if self.cutout > 0:
            out["size"] = torch.rand(batch, generator=generator, device=dev) * (self.cutout * width)
            centre = torch.rand(batch, 2, generator=generator, device=dev)
            out["cy"], out["cx"] = centre[:, 0] * height, centre[:, 1] * width
        return out

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Apply drawn ``params`` (see :meth:`sample_params`) to the batch ``x``."""
        y = _as_uint8(x)
        for k in range(self.num_ops):
            y = apply_op_batch(y, params["op"][:, k], params["param"][:, k], ops=self._names, fill=self.fill)
        if "size" in params:
            y = cg.cutout_at(y, params["size"], params["cy"], params["cx"], self.cutout_fill)
        return _restore_dtype(y, x)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.apply(x, self.sample_params(b, h, w, generator, x.device))

    def __repr__(self) -> str:
        return f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude!r}, cutout={self.cutout})"


# ---------------------------------------------------------------------------------------------------------------------
# views


def make_strong_view(*, mean, std, image_size, padding: int = 4, flip: bool = True, policy: str = "cifar10",
                     fill=(128, 128, 128), **options) -> View:
    """Strong view: the weak crop + flip (:func:`~noisyclr.augment.views.crop_ops`: ``RandomCrop(image_size,
    padding)``, or the ``crop`` of ``options``) → :class:`AutoAugment` (``policy``, ``fill``) → normalise. The
    factory option ``policy`` is ``"cifar10"`` (default) or ``"imagenet"``."""
    _check_stats(mean, std)
    ops = crop_ops(image_size=image_size, padding=padding, flip=flip, **options)
    ops += [AutoAugment(policy, fill), Normalize(mean, std)]
    return View("strong", ops, random=True)


def make_strong_imagenet_view(*, mean, std, image_size, padding: int = 4, flip: bool = True,
                              fill=(128, 128, 128), **options) -> View:
    """``strong`` with the ImageNet policy (Tiny-ImageNet, Clothing1M, WebVision; PLReMix's multi-crops are this
    view with ``crop_mode="resized"``)."""
    _check_stats(mean, std)
    ops = crop_ops(image_size=image_size, padding=padding, flip=flip, **options)
    ops += [AutoAugment("imagenet", fill), Normalize(mean, std)]
    return View("strong_imagenet", ops, random=True)


def make_randaug_view(*, mean, std, image_size, padding: int = 4, flip: bool = True, num_ops: int = 4,
                      magnitude="random", cutout: float = 0.5, **options) -> View:
    """PLReMix ``--aug randaug``: weak crop + flip → :class:`RandAugment` (4 ops, random magnitude, Cutout ≤ 0.5)
    → normalise."""
    _check_stats(mean, std)
    ops = crop_ops(image_size=image_size, padding=padding, flip=flip, **options)
    ops += [RandAugment(num_ops, magnitude, cutout), Normalize(mean, std)]
    return View("randaug", ops, random=True)


def _register() -> None:
    for name, factory in (("strong", make_strong_view), ("strong_imagenet", make_strong_imagenet_view),
                          ("randaug", make_randaug_view)):
        existing = VIEWS.get(name)
        # Re-importing (reload) this module replaces its own earlier factories; anything else is a real clash.
        same = existing is not None and getattr(existing, "__module__", None) == __name__ \
            and getattr(existing, "__qualname__", None) == factory.__qualname__
        register_view(name, factory, overwrite=same)


_register()
