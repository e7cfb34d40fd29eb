"""Batched colour and geometry primitives of AutoAugment / RandAugment, with per-sample magnitudes.

Every function works on a whole ``(B, C, H, W)`` batch on its device (``C`` = 1 or 3) and takes its magnitudes as
tensors of shape ``(B,)`` (a Python number is broadcast to the batch), so one call applies a different strength to
every sample with no Python loop over samples and no host sync. Images are uint8, or float holding values in
[0, 255]; the output has the input's dtype.

Reference semantics: these reproduce **PIL** (Pillow >= 9), the library the original AutoAugment / FixMatch /
PLReMix pipelines call, and agree with torchvision's tensor ops (``torchvision.transforms.functional``) except where
noted:

* Geometric ops (:func:`affine_nearest`) reproduce PIL's ``Image.transform(AFFINE, NEAREST)`` bit for bit: the
  coefficients ``(a, b, c, d, e, f)`` map an output point to the input point ``(a·X + b·Y + c, d·X + e·Y + f)`` in
  continuous coordinates whose origin is the top-left *corner* (pixel ``(i, j)`` has its centre at
  ``(j + 0.5, i + 0.5)``); the output pixel takes the input pixel at the ``floor`` of that point, or ``fill``
  outside the image, with Pillow's 16.16 fixed-point arithmetic for shears and rotations. This is what
  ``affine_grid`` + ``grid_sample(mode="nearest", align_corners=False)`` computes (torchvision's tensor path) up to
  points within 2^-16 of a pixel edge; it is done as one integer gather, so uint8 images are never cast to float.
  Conventions: Rotate is counter-clockwise about the image centre (PIL/torchvision; +90° = ``torch.rot90(x, 1,
  (-2, -1))``); ShearX/Y are about the top-left corner, input ``(X + m·Y, Y)`` / ``(X, m·X + Y)`` (torchvision's
  AutoAugment uses ``center=[0, 0]`` for exactly this); TranslateX/Y move the content right/down for positive
  pixels (torchvision's ``translate`` direction).
* Colour ops follow PIL's ``ImageEnhance`` / ``ImageOps``: the greyscale is PIL's fixed-point ``convert("L")``
  (``(19595 R + 38470 G + 7471 B + 2^15) >> 16``); Contrast blends with the grey mean rounded to an integer;
  the blend ``degenerate + f·(image − degenerate)`` is clamped to [0, 255] and truncated for uint8 (PIL's
  ``Image.blend``). torchvision instead uses an unrounded mean of a truncated greyscale, which can differ by one
  level on a few pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "per_sample", "fill_values",
    "affine_nearest", "identity_matrix", "shear_x_matrix", "shear_y_matrix", "translate_matrix", "rotate_matrix",
    "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
    "apply_lut", "identity_lut", "invert_lut", "posterize_lut", "solarize_lut", "autocontrast_lut", "equalize_lut",
    "invert", "posterize", "solarize", "autocontrast", "equalize",
    "grayscale", "blend", "contrast_degenerate", "color_degenerate", "sharpness_degenerate",
    "brightness", "contrast", "color", "sharpness",
    "cutout_at", "cutout",
]

# PIL's RGB -> L weights in 16-bit fixed point (ITU-R 601-2); they sum to 65536.
_L_WEIGHTS = (19595, 38470, 7471)


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def per_sample(value, batch: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``value`` as a ``(batch,)`` tensor of ``dtype`` on ``device`` (a scalar is broadcast; a tensor is not copied
    when it already has the right dtype and device)."""
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if t.dim() == 0:
        return t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"per-sample magnitude must have shape ({batch},), got {tuple(t.shape)}")
    return t


def fill_values(fill, channels: int) -> tuple[float, ...]:
    """A fill colour as one value per channel.

    A number is used for every channel; a sequence of length ``channels`` is used as is; a 3-value RGB colour on a
    1-channel image becomes its PIL grey level (``(19595 R + 38470 G + 7471 B + 2^15) >> 16``).
    """
    if isinstance(fill, (int, float)):
        return (float(fill),) * channels
    vals = tuple(float(v) for v in fill)
    if len(vals) == channels:
        return vals
    if len(vals) == 1:
        return vals * channels
    if channels == 1 and len(vals) == 3:
        grey = (sum(int(round(v)) * w for v, w in zip(vals, _L_WEIGHTS)) + 32768) >> 16
        return (float(grey),)
    raise ValueError(f"fill {fill!r} does not match {channels} channels")


_FILL_CACHE: dict = {}


def _fill_tensor(fill, x: torch.Tensor) -> torch.Tensor:
    """``(1, C, 1, 1)`` tensor of ``x``'s dtype and device with the fill colour (a tensor fill is used as is).

    Cached per (colour, dtype, device): the hot loop must not do a host-to-device copy per call."""
    if isinstance(fill, torch.Tensor):
        return fill.to(device=x.device, dtype=x.dtype).reshape(1, -1, 1, 1)
    vals = fill_values(fill, x.shape[1])
    key = (vals, x.dtype, x.device)
    t = _FILL_CACHE.get(key)
    if t is None:
        t = _FILL_CACHE[key] = torch.tensor(vals, dtype=torch.float32).to(x.dtype).reshape(1, -1, 1, 1).to(x.device)
    return t


def _is_int(x: torch.Tensor) -> bool:
    return not torch.is_floating_point(x)


def _coord_dtype(x: torch.Tensor) -> torch.dtype:
    # Coordinates in float64 like PIL (a few elements per pixel, negligible even on a GPU); MPS has no float64.
    return torch.float32 if x.device.type == "mps" else torch.float64


# ---------------------------------------------------------------------------------------------------------------------
# geometry


def identity_matrix(batch: int, device, dtype=torch.float64) -> torch.Tensor:
    """``(B, 6)`` identity affine coefficients ``(1, 0, 0, 0, 1, 0)``."""
    m = torch.zeros(batch, 6, dtype=dtype, device=device)
    m[:, 0] = 1
    m[:, 4] = 1
    return m


def shear_x_matrix(m: torch.Tensor) -> torch.Tensor:
    """PIL coefficients ``(1, m, 0, 0, 1, 0)`` of ShearX: output ``(X, Y)`` reads input ``(X + m·Y, Y)``.

    The shear is about the top-left corner, as in the TF AutoAugment, PIL-based ports and torchvision's AutoAugment
    (``F.affine(shear=[degrees(atan(m)), 0], center=[0, 0])``, which gives the same matrix).
    """
    z, o = torch.zeros_like(m), torch.ones_like(m)
    return torch.stack([o, m, z, z, o, z], dim=-1)


def shear_y_matrix(m: torch.Tensor) -> torch.Tensor:
    """PIL coefficients ``(1, 0, 0, m, 1, 0)`` of ShearY: output ``(X, Y)`` reads input ``(X, m·X + Y)``."""
    z, o = torch.zeros_like(m), torch.ones_like(m)
    return torch.stack([o, z, z, m, o, z], dim=-1)


def translate_matrix(dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Coefficients ``(1, 0, −dx, 0, 1, −dy)``: the content moves ``dx`` pixels right and ``dy`` pixels down.

    This is torchvision's ``F.affine(translate=[dx, dy])`` direction. PIL's ``transform(AFFINE, (1, 0, v, 0, 1, 0))``
    used by the PIL-based ports moves the content *left* by ``v``, i.e. ``dx = −v``; with a symmetric random sign
    the two are the same distribution.
    """
    z, o = torch.zeros_like(dx), torch.ones_like(dx)
    return torch.stack([o, z, -dx, z, o, -dy], dim=-1)


def rotate_matrix(angle: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Coefficients of a rotation by ``angle`` degrees **counter-clockwise** about the image centre.

    Matches ``PIL.Image.rotate(angle)`` (centre ``(W/2, H/2)`` in corner-origin coordinates, i.e. the true centre
    of the pixel grid) and ``torchvision.transforms.functional.rotate``: output ``(X, Y)`` reads input
    ``cx + cos·(X−cx) − sin·(Y−cy), cy + sin·(X−cx) + cos·(Y−cy)``. A rotation by +90° equals
    ``torch.rot90(x, 1, dims=(-2, -1))``. The arithmetic follows PIL's ``rotate`` step by step (angle mod 360,
    trigonometric values rounded to 15 decimals, so multiples of 90° are exact).
    """
    rad = -torch.deg2rad(torch.remainder(angle, 360.0))
    cos = torch.round(torch.cos(rad), decimals=15)
    sin = torch.round(torch.sin(rad), decimals=15)
    cx, cy = width / 2, height / 2
    a, b, d, e = cos, sin, -sin, cos
    c = (a * (-cx) + b * (-cy)) + cx
    f = (d * (-cx) + e * (-cy)) + cy
    return torch.stack([a, b, c, d, e, f], dim=-1)


def affine_nearest(x: torch.Tensor, matrix: torch.Tensor, fill=0) -> torch.Tensor:
    """Apply per-sample inverse affine maps with nearest-neighbour sampling, exactly as PIL's
    ``Image.transform(size, AFFINE, (a, b, c, d, e, f), NEAREST, fillcolor=fill)``.

    The output point ``(X, Y)`` (pixel ``(i, j)`` is the point ``(j + 0.5, i + 0.5)``) takes the input pixel at
    ``floor`` of ``(a·X + b·Y + c, d·X + e·Y + f)``, or ``fill`` outside the image. Like Pillow's C code
    (``Geometry.c``): when ``b == d == 0`` (translation/scale) the coordinates are computed in float64
    (``ImagingScaleAffine``); otherwise (shear, rotation) in 16.16 fixed point, ``floor((FIX(c + a/2 + b/2) +
    j·FIX(a) + i·FIX(b)) / 2^16)`` with ``FIX(v) = floor(65536·v + 0.5)`` (``affine_fixed``). The fixed-point
    path is integer arithmetic, so it is also bit-identical on every device. (Pillow falls back to float64 when a
    coordinate exceeds ±32768, i.e. never for training-size images; that fallback is not reproduced.)

    This is ``affine_grid`` + ``grid_sample(mode="nearest", align_corners=False)`` up to points within 2^-16 of
    a pixel edge, implemented as one integer gather on the flattened batch so uint8 images are never cast to float.

    Args:
        x: ``(B, C, H, W)`` batch of any dtype.
        matrix: ``(B, 6)`` (or ``(B, 2, 3)``) coefficients ``(a, b, c, d, e, f)``.
        fill: value of output pixels whose source lies outside the image (number, per-channel sequence or tensor).
    Returns:
        ``(B, C, H, W)`` batch with ``x``'s dtype.
    """
    b, c, h, w = x.shape
    dev = x.device
    cdt = _coord_dtype(x)
    m = matrix.reshape(b, 6).to(device=dev, dtype=cdt)
    a0, a1, a2, a3, a4, a5 = (m[:, k].reshape(b, 1, 1) for k in range(6))
    jj = torch.arange(w, device=dev).reshape(1, 1, w)
    ii = torch.arange(h, device=dev).reshape(1, h, 1)
    # Translation / scale (ImagingScaleAffine): float coordinates, separable.
    sx_float = torch.floor(a2 + a0 * 0.5 + jj.to(cdt) * a0).long()  # (B, 1, W)
    sy_float = torch.floor(a5 + a4 * 0.5 + ii.to(cdt) * a4).long()  # (B, H, 1)
    # General affine (affine_fixed): 16.16 fixed point; ``>>`` on int64 is a floor division like C's on int.
    fix = lambda v: torch.floor(v * 65536.0 + 0.5).long()  # noqa: E731
    sx_fixed = (fix(a2 + a0 * 0.5 + a1 * 0.5) + jj * fix(a0) + ii * fix(a1)) >> 16  # (B, H, W)
    sy_fixed = (fix(a5 + a3 * 0.5 + a4 * 0.5) + jj * fix(a3) + ii * fix(a4)) >> 16
    separable = (a1 == 0) & (a3 == 0)
    src_x = torch.where(separable, sx_float, sx_fixed)
    src_y = torch.where(separable, sy_float, sy_fixed)
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    # Why it is fast: the whole batch is resampled by one gather on the flattened image, in the image's own dtype.
    index = (src_y.clamp(0, h - 1) * w + src_x.clamp(0, w - 1)).reshape(b, 1, h * w)
    out = torch.gather(x.reshape(b, c, h * w), 2, index.expand(b, c, h * w)).reshape(b, c, h, w)
    return torch.where(inside.unsqueeze(1), out, _fill_tensor(fill, x))


def shear_x(x: torch.Tensor, m, fill=0) -> torch.Tensor:
    """ShearX by per-sample factor ``m`` (AutoAugment range ±0.3): ``PIL transform(AFFINE, (1, m, 0, 0, 1, 0))``,
    nearest, ``fill`` outside. Equals torchvision AutoAugment's ShearX (shear about the top-left corner)."""
    m = per_sample(m, x.shape[0], x.device, _coord_dtype(x))
    return affine_nearest(x, shear_x_matrix(m), fill)


def shear_y(x: torch.Tensor, m, fill=0) -> torch.Tensor:
    """ShearY by per-sample factor ``m``: ``PIL transform(AFFINE, (1, 0, 0, m, 1, 0))``, nearest, ``fill`` outside."""
    m = per_sample(m, x.shape[0], x.device, _coord_dtype(x))
    return affine_nearest(x, shear_y_matrix(m), fill)


def translate_x(x: torch.Tensor, dx, fill=0) -> torch.Tensor:
    """Shift the content ``dx`` pixels to the **right** (negative: left), ``fill`` entering from the other side.

    ``out[..., j] = x[..., j − dx]`` for integer ``dx`` (torchvision ``F.affine(translate=[dx, 0])``); a fractional
    ``dx`` samples the nearest pixel as PIL does.
    """
    dx = per_sample(dx, x.shape[0], x.device, _coord_dtype(x))
    return affine_nearest(x, translate_matrix(dx, torch.zeros_like(dx)), fill)


def translate_y(x: torch.Tensor, dy, fill=0) -> torch.Tensor:
    """Shift the content ``dy`` pixels **down** (negative: up): ``out[..., i, :] = x[..., i − dy, :]``."""
    dy = per_sample(dy, x.shape[0], x.device, _coord_dtype(x))
    return affine_nearest(x, translate_matrix(torch.zeros_like(dy), dy), fill)


def rotate(x: torch.Tensor, angle, fill=0) -> torch.Tensor:
    """Rotate by ``angle`` degrees counter-clockwise about the image centre, nearest, ``fill`` in the corners.

    Same as ``PIL.Image.rotate(angle, fillcolor=fill)`` and torchvision ``F.rotate`` (see :func:`rotate_matrix`).
    """
    angle = per_sample(angle, x.shape[0], x.device, _coord_dtype(x))
    return affine_nearest(x, rotate_matrix(angle, x.shape[2], x.shape[3]), fill)


# ---------------------------------------------------------------------------------------------------------------------
# per-channel lookup tables (Invert, Posterize, Solarize, AutoContrast, Equalize)


def _levels(x: torch.Tensor) -> torch.Tensor:
    """Integer levels 0..255 as int64 (float input is rounded)."""
    if _is_int(x):
        return x.long()
    return x.round().clamp(0, 255).long()


def apply_lut(x: torch.Tensor, lut: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
    """Map every pixel through its sample's and channel's table: ``out[b, c] = lut[b, c, x[b, c]]``.

    Args:
        x: ``(B, C, H, W)`` uint8, or float with integer levels (rounded first).
        lut: ``(B, C, 256)`` or ``(B, 1, 256)`` table of output levels in 0..255.
        levels: ``x`` as int64 levels (``_levels(x)``), when the caller already has them.
    Returns:
        ``x``'s dtype.
    """
    b, c, h, w = x.shape
    if levels is None:
        levels = _levels(x)
    lut = lut.expand(b, c, 256).to(x.dtype)  # gathering uint8 is ~4x cheaper than int64
    return torch.gather(lut, 2, levels.reshape(b, c, h * w)).reshape(b, c, h, w)


def identity_lut(batch: int, device) -> torch.Tensor:
    """``(B, 1, 256)`` int64 identity table."""
    return torch.arange(256, device=device).expand(batch, 1, 256)


def invert_lut(batch: int, device) -> torch.Tensor:
    """``(B, 1, 256)`` table ``255 − v`` (``PIL.ImageOps.invert``)."""
    return (255 - torch.arange(256, device=device)).expand(batch, 1, 256)


def posterize_lut(bits: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 256)`` table keeping the ``bits`` high bits: ``v & ~(2^(8−bits) − 1)`` (``ImageOps.posterize``)."""
    bits = bits.long().clamp(0, 8)
    mask = 256 - torch.pow(2, 8 - bits)  # 8 bits -> 255, 4 bits -> 240, 0 bits -> 0
    return torch.arange(256, device=bits.device).reshape(1, 1, 256) & mask.reshape(-1, 1, 1)


def solarize_lut(threshold: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 256)`` table inverting levels ``>= threshold`` (``ImageOps.solarize``, torchvision ``solarize``)."""
    v = torch.arange(256, device=threshold.device).reshape(1, 1, 256)
    return torch.where(v >= threshold.reshape(-1, 1, 1), 255 - v, v)


def autocontrast_lut(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, 256)`` tables of ``ImageOps.autocontrast(cutoff=0)``, per sample and channel.

    With ``lo``/``hi`` the channel's min/max level: ``v -> clamp(int(v·s − lo·s), 0, 255)``, ``s = 255/(hi − lo)``
    (computed in float64 like PIL's Python code); identity when ``hi <= lo`` (constant channel).
    """
    b, c = x.shape[:2]
    flat = (x if _is_int(x) else x.round().clamp(0, 255)).reshape(b, c, -1)
    lo, hi = torch.aminmax(flat, dim=-1, keepdim=True)  # (B, C, 1) each
    lo, hi = lo.long(), hi.long()
    cdt = _coord_dtype(x)
    span = (hi - lo).clamp(min=1).to(cdt)
    scale = torch.full_like(span, 255.0) / span  # not ``255.0 / span``: torch computes that as 255 · (1/span)
    offset = -lo.to(cdt) * scale
    v = torch.arange(256, device=x.device, dtype=cdt)
    lut = torch.trunc(v * scale + offset).clamp(0, 255).long()
    return torch.where(hi > lo, lut, torch.arange(256, device=x.device))


def equalize_lut(x: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, C, 256)`` tables of ``ImageOps.equalize``, per sample and channel (torchvision's tensor version agrees).

    With ``h`` the channel histogram and ``step = (N − h[max level]) // 255``:
    ``lut[v] = min(255, (step // 2 + Σ_{u<v} h[u]) // step)``; identity when ``step == 0`` (including constant
    channels). The histograms of the whole batch are one ``scatter_add`` on ``(b·C + c)·256 + level`` indices.
    ``levels``: ``x`` as int64 levels, when the caller already has them.
    """
    b, c = x.shape[:2]
    lv = (_levels(x) if levels is None else levels).reshape(b * c, -1)
    n = lv.shape[1]
    offsets = torch.arange(b * c, device=x.device).reshape(-1, 1) * 256
    hist = torch.zeros(b * c * 256, dtype=torch.long, device=x.device)
    # scatter_add rather than bincount: CUDA bincount reads the max on the host (a sync).
    ones = torch.ones(1, dtype=torch.long, device=x.device).expand(lv.numel())
    hist.scatter_add_(0, (lv + offsets).reshape(-1), ones)
    hist = hist.reshape(b * c, 256)
    last = hist.gather(1, lv.amax(1, keepdim=True))  # count of the highest present level
    step = (n - last) // 255  # (B*C, 1)
    cum_before = torch.cumsum(hist, 1) - hist
    lut = ((step // 2 + cum_before) // step.clamp(min=1)).clamp(max=255)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device))
    return lut.reshape(b, c, 256)


def invert(x: torch.Tensor) -> torch.Tensor:
    """``255 − x`` (``ImageOps.invert``)."""
    return (255 - x) if _is_int(x) else 255.0 - x


def posterize(x: torch.Tensor, bits) -> torch.Tensor:
    """Keep the ``bits`` (per sample, 0..8) most significant bits of every channel (``ImageOps.posterize``)."""
    bits = per_sample(bits, x.shape[0], x.device, torch.long)
    return apply_lut(x, posterize_lut(bits))


def solarize(x: torch.Tensor, threshold) -> torch.Tensor:
    """Invert the levels ``>= threshold`` (per sample; ``ImageOps.solarize``, torchvision ``F.solarize``)."""
    threshold = per_sample(threshold, x.shape[0], x.device)
    return apply_lut(x, solarize_lut(threshold))


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel's [min, max] to [0, 255] (``ImageOps.autocontrast``; see :func:`autocontrast_lut`)."""
    return apply_lut(x, autocontrast_lut(x))


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram equalisation (``ImageOps.equalize``; see :func:`equalize_lut`)."""
    return apply_lut(x, equalize_lut(x))


# ---------------------------------------------------------------------------------------------------------------------
# blends (Brightness, Contrast, Color, Sharpness)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` float32 grey of a 3-channel batch as ``PIL convert("L")``: ``(19595 R + 38470 G + 7471 B
    + 2^15) >> 16`` for uint8 (float input: the unrounded weighted sum); a 1-channel batch is returned as float."""
    if x.shape[1] == 1:
        return x.float()
    xf = x.float()
    g = xf[:, 0:1] * _L_WEIGHTS[0] + xf[:, 1:2] * _L_WEIGHTS[1] + xf[:, 2:3] * _L_WEIGHTS[2]
    if _is_int(x):
        # Exact in float32: every partial sum is an integer below 2^24 (65536·255 + 2^15 < 2^24), and the division
        # by 2^16 is exact, so this is PIL's integer ``(... + 2^15) >> 16``.
        return torch.floor((g + 32768.0) * (1.0 / 65536.0))
    return g * (1.0 / 65536.0)


def blend(x: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ``Image.blend(degenerate, x, factor)``: ``degenerate + factor·(x − degenerate)`` in float32, clamped to
    [0, 255] and, for uint8, truncated. ``factor`` is ``(B,)``; ``factor == 1`` returns ``x`` exactly."""
    f = factor.float().reshape(-1, 1, 1, 1)
    out = degenerate + f * (x.float() - degenerate)
    out = out.clamp(0, 255)
    return out.to(torch.uint8) if x.dtype == torch.uint8 else out.to(x.dtype)


def contrast_degenerate(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 1, 1)`` float32 mean grey level, rounded to an integer for uint8 as ``ImageEnhance.Contrast`` does
    (``int(mean(L) + 0.5)``)."""
    g = grayscale(x)
    mean = g.double().mean(dim=(1, 2, 3), keepdim=True)
    return (torch.floor(mean + 0.5) if _is_int(x) else mean).float()


def color_degenerate(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` float32 grey image (``ImageEnhance.Color``: ``convert("L")`` back to RGB)."""
    return grayscale(x)


def sharpness_degenerate(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` float32 ``ImageFilter.SMOOTH`` of ``x``: 3×3 kernel ``[[1,1,1],[1,5,1],[1,1,1]]/13`` on the
    interior, rounded for uint8 (Pillow adds 0.5 then truncates), border rows/columns kept unchanged."""
    b, c, h, w = x.shape
    xf = x.float()
    if h < 3 or w < 3:
        return xf
    k = torch.ones(3, 3, dtype=torch.float32, device=x.device)
    k[1, 1] = 5.0
    k = (k / 13.0).expand(c, 1, 3, 3)
    inner = F.conv2d(xf, k, groups=c)  # (B, C, H-2, W-2)
    if _is_int(x):
        inner = torch.floor(inner + 0.5).clamp(0, 255)
    out = xf.clone()
    out[:, :, 1:-1, 1:-1] = inner
    return out


def brightness(x: torch.Tensor, factor) -> torch.Tensor:
    """``ImageEnhance.Brightness(img).enhance(factor)``: blend with black, i.e. ``trunc(clamp(factor·x))``."""
    factor = per_sample(factor, x.shape[0], x.device)
    return blend(x, torch.zeros((), device=x.device), factor)


def contrast(x: torch.Tensor, factor) -> torch.Tensor:
    """``ImageEnhance.Contrast(img).enhance(factor)``: blend with the (rounded) mean grey level."""
    factor = per_sample(factor, x.shape[0], x.device)
    return blend(x, contrast_degenerate(x), factor)


def color(x: torch.Tensor, factor) -> torch.Tensor:
    """``ImageEnhance.Color(img).enhance(factor)`` (saturation): blend with the PIL greyscale; identity on 1 channel."""
    factor = per_sample(factor, x.shape[0], x.device)
    return blend(x, color_degenerate(x), factor)


def sharpness(x: torch.Tensor, factor) -> torch.Tensor:
    """``ImageEnhance.Sharpness(img).enhance(factor)``: blend with the SMOOTH-filtered image (border unchanged)."""
    factor = per_sample(factor, x.shape[0], x.device)
    return blend(x, sharpness_degenerate(x), factor)


# ---------------------------------------------------------------------------------------------------------------------
# cutout


def cutout_at(x: torch.Tensor, size, cy, cx, fill=(125, 123, 114)) -> torch.Tensor:
    """Fill a square of side ``size`` pixels near centre ``(cy, cx)`` (all ``(B,)``), FixMatch ``CutoutAbs`` style.

    As in the FixMatch / PLReMix ``CutoutAbs`` (PIL ``ImageDraw.rectangle``, whose corners are inclusive):
    ``x0 = int(max(0, cx − size/2))``, ``x1 = min(W, x0 + size)`` and columns ``x0 <= j <= int(x1)`` are filled
    (rows likewise), so an unclipped box is ``floor(size) + 1`` pixels wide and a box near the left/top edge is
    shifted inside rather than cut. Samples with ``size <= 0`` are left unchanged.
    """
    b, c, h, w = x.shape
    size = per_sample(size, b, x.device)
    cy, cx = per_sample(cy, b, x.device), per_sample(cx, b, x.device)
    x0 = torch.floor(torch.clamp(cx - size / 2, min=0))
    y0 = torch.floor(torch.clamp(cy - size / 2, min=0))
    x1 = torch.floor(torch.clamp(x0 + size, max=w))
    y1 = torch.floor(torch.clamp(y0 + size, max=h))
    cols = torch.arange(w, device=x.device, dtype=torch.float32).reshape(1, w)
    rows = torch.arange(h, device=x.device, dtype=torch.float32).reshape(1, h)
    in_x = (cols >= x0[:, None]) & (cols <= x1[:, None])  # (B, W)
    in_y = (rows >= y0[:, None]) & (rows <= y1[:, None]) & (size[:, None] > 0)  # (B, H)
    box = (in_y[:, :, None] & in_x[:, None, :]).unsqueeze(1)  # (B, 1, H, W)
    return torch.where(box, _fill_tensor(fill, x), x)


def cutout(x: torch.Tensor, size, generator: torch.Generator, fill=(125, 123, 114)) -> torch.Tensor:
    """:func:`cutout_at` at a centre drawn uniformly in ``[0, W) × [0, H)`` per sample from ``generator``."""
    b, _, h, w = x.shape
    u = torch.rand(b, 2, generator=generator, device=x.device)
    return cutout_at(x, size, u[:, 0] * h, u[:, 1] * w, fill)
