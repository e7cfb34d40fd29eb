"""Batched AutoAugment / RandAugment: every primitive against PIL (the library the reference pipelines call) and
against naive per-image formulas, the batched dispatch against per-sample calls, the policy and magnitude tables,
the RNG discipline, and the registered views."""

import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

import noisyclr.augment.autoaugment as aa
from noisyclr.augment import color_geometry as cg
from noisyclr.augment.views import VIEWS, build_view

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
AFFINE = getattr(Image, "Transform", Image).AFFINE  # Pillow >= 9.1 enum, older module constant
KNOWN_OPS = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
             "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These ops are many small kernels; on a loaded 2-core runner two OpenMP threads spend most of their time
    waiting for each other (10x slower than one). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _images(b, c=3, h=8, w=8, seed=0, low=0, high=256):
    g = _gen(seed)
    return torch.randint(low, high, (b, c, h, w), generator=g, dtype=torch.uint8)


def _varied(b, c, h, w, seed=0):
    """Images with narrow random ranges (so AutoContrast / Equalize / Solarize all do something) and a few
    quantised ones (few distinct levels: Equalize's step == 0 and constant-channel edge cases)."""
    rng = np.random.default_rng(seed)
    out = np.empty((b, c, h, w), dtype=np.uint8)
    for i in range(b):
        lo, hi = sorted(rng.integers(0, 256, 2))
        img = rng.integers(lo, hi + 1, (c, h, w))
        if i % 5 == 0:
            img = img // 64 * 64
        if i % 11 == 0:
            img[:] = lo  # constant image
        out[i] = img
    return torch.from_numpy(out)


def _to_pil(img):  # (C, H, W) uint8 tensor
    a = img.numpy()
    return Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))


def _from_pil(im, c):
    a = np.asarray(im)
    return torch.from_numpy((a[None] if c == 1 else a.transpose(2, 0, 1)).copy())


def _pil_fill(fill, c):
    vals = cg.fill_values(fill, c)
    return int(vals[0]) if c == 1 else tuple(int(v) for v in vals)


def _pil_op(im, name, p, fill):
    """The PIL call the reference pipelines make for op ``name`` with parameter ``p`` (apply_op_batch units)."""
    w, h = im.size
    c = len(im.getbands())
    f = _pil_fill(fill, c)
    if name == "Identity":
        return im
    if name == "ShearX":
        return im.transform((w, h), AFFINE, (1, p, 0, 0, 1, 0), fillcolor=f)
    if name == "ShearY":
        return im.transform((w, h), AFFINE, (1, 0, 0, p, 1, 0), fillcolor=f)
    if name == "TranslateX":
        return im.transform((w, h), AFFINE, (1, 0, -p, 0, 1, 0), fillcolor=f)
    if name == "TranslateY":
        return im.transform((w, h), AFFINE, (1, 0, 0, 0, 1, -p), fillcolor=f)
    if name == "Rotate":
        return im.rotate(p, fillcolor=f)
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return getattr(ImageEnhance, name)(im).enhance(p)
    if name == "Posterize":
        return ImageOps.posterize(im, int(p))
    if name == "Solarize":
        return ImageOps.solarize(im, p)
    if name == "AutoContrast":
        return ImageOps.autocontrast(im)
    if name == "Equalize":
        return ImageOps.equalize(im)
    if name == "Invert":
        return ImageOps.invert(im)
    raise AssertionError(name)


# ---------------------------------------------------------------------------------------------------------------------
# primitives against PIL, bit for bit


PRIMS = {
    "ShearX": lambda x, p, fill: cg.shear_x(x, p, fill),
    "ShearY": lambda x, p, fill: cg.shear_y(x, p, fill),
    "TranslateX": lambda x, p, fill: cg.translate_x(x, p, fill),
    "TranslateY": lambda x, p, fill: cg.translate_y(x, p, fill),
    "Rotate": lambda x, p, fill: cg.rotate(x, p, fill),
    "Brightness": lambda x, p, fill: cg.brightness(x, p),
    "Color": lambda x, p, fill: cg.color(x, p),
    "Contrast": lambda x, p, fill: cg.contrast(x, p),
    "Sharpness": lambda x, p, fill: cg.sharpness(x, p),
    "Posterize": lambda x, p, fill: cg.posterize(x, p),
    "Solarize": lambda x, p, fill: cg.solarize(x, p),
    "AutoContrast": lambda x, p, fill: cg.autocontrast(x),
    "Equalize": lambda x, p, fill: cg.equalize(x),
    "Invert": lambda x, p, fill: cg.invert(x),
}


def _random_params(name, b, h, w, rng):
    if name in ("ShearX", "ShearY"):
        return rng.uniform(-0.3, 0.3, b)
    if name == "TranslateX":
        return np.where(np.arange(b) % 2 == 0, rng.integers(-w // 2, w // 2 + 1, b), rng.uniform(-0.4, 0.4, b) * w)
    if name == "TranslateY":
        return np.where(np.arange(b) % 2 == 0, rng.integers(-h // 2, h // 2 + 1, b), rng.uniform(-0.4, 0.4, b) * h)
    if name == "Rotate":
        return np.concatenate([[90.0, -90.0, 180.0, 270.0, 0.0, 45.0], rng.uniform(-30, 30, b - 6)])
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return rng.uniform(0.05, 1.9, b)
    if name == "Posterize":
        return rng.integers(1, 9, b).astype(float)
    if name == "Solarize":
        return rng.uniform(0, 256, b)
    return np.zeros(b)


@pytest.mark.parametrize("name", sorted(PRIMS))
@pytest.mark.parametrize("c,h,w", [(3, 12, 12), (3, 9, 14), (1, 11, 8)])
def test_primitive_matches_pil(name, c, h, w):
    b = 24
    rng = np.random.default_rng(zlib.crc32(f"{name}-{c}-{h}-{w}".encode()))
    x = _varied(b, c, h, w, seed=int(rng.integers(1 << 30)))
    params = _random_params(name, b, h, w, rng)
    fill = (128, 60, 200) if c == 3 else 77
    out = PRIMS[name](x, torch.tensor(params, dtype=torch.float64), fill)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    for i in range(b):
        ref = _from_pil(_pil_op(_to_pil(x[i]), name, float(params[i]), fill), c)
        assert torch.equal(out[i], ref), f"{name} sample {i} param {params[i]}"


def test_cutout_matches_pil_rectangle():
    rng = np.random.default_rng(3)
    b, h, w = 40, 16, 20
    x = _images(b, 3, h, w, seed=3)
    size = torch.tensor(rng.uniform(0, 0.5, b) * w)
    cy, cx = torch.tensor(rng.uniform(0, h, b)), torch.tensor(rng.uniform(0, w, b))
    size[0] = 0.0  # size 0 leaves the image alone
    out = cg.cutout_at(x, size, cy, cx, (125, 123, 114))
    assert torch.equal(out[0], x[0])
    for i in range(1, b):
        v = float(size[i])
        x0, y0 = int(max(0, float(cx[i]) - v / 2)), int(max(0, float(cy[i]) - v / 2))
        im = _to_pil(x[i])
        ImageDraw.Draw(im).rectangle((x0, y0, min(w, x0 + v), min(h, y0 + v)), (125, 123, 114))
        assert torch.equal(out[i], _from_pil(im, 3)), i


# ---------------------------------------------------------------------------------------------------------------------
# primitives against naive per-image formulas


def test_invert_posterize_solarize_formulas():
    x = _images(6, 3, 5, 7, seed=1)
    assert torch.equal(cg.invert(x), 255 - x)
    bits = torch.tensor([1, 2, 4, 6, 7, 8])
    out = cg.posterize(x, bits)
    for i in range(6):
        k = 8 - int(bits[i])
        assert torch.equal(out[i], (x[i].int() >> k << k).to(torch.uint8))
    thr = torch.tensor([0.0, 1.0, 100.0, 128.5, 255.0, 256.0])
    out = cg.solarize(x, thr)
    for i in range(6):
        assert torch.equal(out[i], torch.where(x[i] >= thr[i], 255 - x[i], x[i]))
    assert torch.equal(cg.solarize(x, 256.0), x)  # nothing reaches the threshold
    assert torch.equal(cg.solarize(x, 0.0), 255 - x)


def _pil_grey(img):  # (3, H, W) uint8 -> int array, PIL's fixed-point ITU-R 601-2 luma
    r, g, b = (img[k].numpy().astype(np.int64) for k in range(3))
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def _blend_ref(img, degenerate, f):
    out = np.float32(degenerate) + np.float32(f) * (img.numpy().astype(np.float32) - np.float32(degenerate))
    return torch.from_numpy(np.clip(out, 0, 255).astype(np.uint8))


def test_brightness_contrast_color_blend_formulas():
    x = _images(5, 3, 6, 9, seed=2)
    f = torch.tensor([0.0, 0.3, 1.0, 1.4, 1.9])
    bright, contr, col = cg.brightness(x, f), cg.contrast(x, f), cg.color(x, f)
    for i in range(5):
        fi = float(f[i])
        assert torch.equal(bright[i], _blend_ref(x[i], 0.0, fi))
        mean = int(_pil_grey(x[i]).mean() + 0.5)
        assert torch.equal(contr[i], _blend_ref(x[i], float(mean), fi))
        assert torch.equal(col[i], _blend_ref(x[i], _pil_grey(x[i])[None].astype(np.float32), fi))
    # factor 1 is the identity; factor 0 gives the degenerate image
    assert torch.equal(cg.contrast(x, 1.0), x) and torch.equal(cg.sharpness(x, 1.0), x)
    assert torch.equal(cg.brightness(x, 0.0), torch.zeros_like(x))
    assert (cg.color(x, 0.0)[:, 0] == cg.color(x, 0.0)[:, 2]).all()  # grey
    g1 = x[:, :1]
    assert torch.equal(cg.color(g1, 0.3), g1)  # no colour to remove on one channel


def test_sharpness_formula_keeps_border():
    x = _images(2, 3, 6, 7, seed=4)
    out = cg.sharpness(x, 0.0)  # factor 0: the SMOOTH-filtered image itself
    xf = x.double()
    for i in range(2):
        for ch in range(3):
            for r in range(6):
                for col in range(7):
                    if r in (0, 5) or col in (0, 6):
                        expected = x[i, ch, r, col]
                    else:
                        s = xf[i, ch, r - 1:r + 2, col - 1:col + 2].sum() + 4 * xf[i, ch, r, col]
                        expected = int(float(s) / 13 + 0.5)
                    assert int(out[i, ch, r, col]) == int(expected)


def _equalize_numpy(channel):
    """PIL's ImageOps.equalize on one uint8 channel, written out."""
    h = np.bincount(channel.ravel(), minlength=256)
    nz = h[h > 0]
    if len(nz) <= 1:
        return channel.copy()
    step = (nz.sum() - nz[-1]) // 255
    if step == 0:
        return channel.copy()
    lut, n = [], step // 2
    for i in range(256):
        lut.append(min(255, n // step))
        n += h[i]
    return np.asarray(lut, dtype=np.uint8)[channel]


def test_equalize_against_numpy_reference():
    x = torch.cat([_varied(12, 3, 7, 9, seed=5), _images(4, 3, 7, 9, seed=6, low=100, high=110)])
    out = cg.equalize(x)
    for i in range(x.shape[0]):
        for ch in range(3):
            assert np.array_equal(out[i, ch].numpy(), _equalize_numpy(x[i, ch].numpy())), (i, ch)


def test_autocontrast_stretches_each_channel():
    x = _images(6, 3, 5, 5, seed=7, low=40, high=90)
    out = cg.autocontrast(x)
    assert (out.flatten(2).amin(-1) == 0).all() and (out.flatten(2).amax(-1) >= 254).all()
    for i in range(6):
        for ch in range(3):
            lo, hi = int(x[i, ch].min()), int(x[i, ch].max())
            scale = 255.0 / (hi - lo)  # PIL's Python float arithmetic; its rounding can make hi map to 254
            expected = [min(255, max(0, int(int(v) * scale - lo * scale))) for v in x[i, ch].flatten()]
            assert out[i, ch].flatten().tolist() == expected
    const = torch.full((1, 3, 4, 4), 17, dtype=torch.uint8)
    assert torch.equal(cg.autocontrast(const), const)


def test_rotate_direction_and_centre():
    x = _images(3, 3, 6, 6, seed=8)
    assert torch.equal(cg.rotate(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)))  # +90 = counter-clockwise
    assert torch.equal(cg.rotate(x, -90.0), torch.rot90(x, -1, dims=(-2, -1)))
    assert torch.equal(cg.rotate(x, 180.0), x.flip(-1).flip(-2))
    assert torch.equal(cg.rotate(x, 0.0), x)
    odd = _images(2, 1, 5, 5, seed=9)
    assert torch.equal(cg.rotate(odd, 90.0), torch.rot90(odd, 1, dims=(-2, -1)))
    # per-sample angles in one call
    both = cg.rotate(x, torch.tensor([90.0, 0.0, -90.0]))
    assert torch.equal(both[0], torch.rot90(x[0], 1, dims=(-2, -1))) and torch.equal(both[1], x[1])
    assert torch.equal(both[2], torch.rot90(x[2], -1, dims=(-2, -1)))


def test_translate_shifts_with_fill():
    x = _images(3, 3, 5, 8, seed=10)
    out = cg.translate_x(x, torch.tensor([3.0, -2.0, 0.0]), fill=(1, 2, 3))
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8).reshape(3, 1, 1)
    assert torch.equal(out[0, :, :, 3:], x[0, :, :, :-3]) and (out[0, :, :, :3] == fill).all()
    assert torch.equal(out[1, :, :, :-2], x[1, :, :, 2:]) and (out[1, :, :, -2:] == fill).all()
    assert torch.equal(out[2], x[2])
    out = cg.translate_y(x, torch.tensor([2.0, -1.0, 9.0]), fill=0)
    assert torch.equal(out[0, :, 2:], x[0, :, :-2]) and (out[0, :, :2] == 0).all()
    assert torch.equal(out[1, :, :-1], x[1, :, 1:]) and (out[1, :, -1:] == 0).all()
    assert (out[2] == 0).all()  # shifted out entirely


def test_shear_is_about_the_top_left_corner():
    x = _images(1, 1, 6, 6, seed=11)
    out = cg.shear_x(x, 0.5)
    for r in range(6):
        for col in range(6):
            src = int(np.floor(col + 0.5 + 0.5 * (r + 0.5)))
            expected = x[0, 0, r, src] if src < 6 else 0
            assert int(out[0, 0, r, col]) == int(expected)
    assert torch.equal(out[0, 0, 0], x[0, 0, 0])  # the top row hardly moves (0.25 px)


def test_float_input_keeps_dtype():
    x = _images(4, 3, 8, 8, seed=12)
    xf = x.float()
    for name, fn in PRIMS.items():
        p = {"Posterize": 4.0, "Solarize": 128.0, "Rotate": 20.0, "ShearX": 0.2, "ShearY": 0.2,
             "TranslateX": 3.0, "TranslateY": 3.0}.get(name, 0.6)
        got = fn(xf, torch.full((4,), p, dtype=torch.float64), 128)
        assert got.dtype == torch.float32, name
        assert got.min() >= 0 and got.max() <= 255, name
        if name not in ("Brightness", "Color", "Contrast", "Sharpness"):  # no truncation of float blends
            assert torch.equal(got, fn(x, torch.full((4,), p, dtype=torch.float64), 128).float()), name


# ---------------------------------------------------------------------------------------------------------------------
# the batched dispatch


def test_apply_op_batch_equals_per_sample_primitives():
    rng = np.random.default_rng(13)
    b, h, w = 90, 10, 12
    x = _varied(b, 3, h, w, seed=13)
    op = torch.tensor(np.arange(b) % len(aa.OPS))
    names = [aa.OPS[int(i)] for i in op]
    param = torch.tensor([float(_random_params(n, 6, h, w, rng)[-1]) if n != "Identity" else 0.0 for n in names],
                         dtype=torch.float64)
    out = aa.apply_op_batch(x, op, param, fill=(128, 128, 128))
    for i, name in enumerate(names):
        if name == "Identity":
            assert torch.equal(out[i], x[i])
        else:
            ref = PRIMS[name](x[i:i + 1], param[i:i + 1], (128, 128, 128))[0]
            assert torch.equal(out[i], ref), (i, name, float(param[i]))


# ---------------------------------------------------------------------------------------------------------------------
# tables


@pytest.mark.parametrize("policy", ["cifar10", "imagenet"])
def test_policy_tables(policy):
    table = aa.POLICIES[policy]
    assert len(table) == 25
    for sub in table:
        assert len(sub) == 2
        for name, p, level in sub:
            assert name in KNOWN_OPS
            assert 0.0 <= p <= 1.0
            if name in ("AutoContrast", "Equalize", "Invert"):
                assert level is None
            else:
                assert level in range(10)
    assert aa.CIFAR10_POLICY[0] == (("Invert", 0.1, None), ("Contrast", 0.2, 6))
    assert aa.CIFAR10_POLICY[-1] == (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None))
    assert aa.IMAGENET_POLICY[0] == (("Posterize", 0.4, 8), ("Rotate", 0.6, 9))
    assert aa.IMAGENET_POLICY[18] == (("ShearX", 0.6, 5), ("Equalize", 1.0, None))


def test_magnitude_tables_are_torchvisions():
    assert aa.magnitude_bins("Posterize")[0] == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    sol, signed = aa.magnitude_bins("Solarize")
    assert not signed and sol[0] == 255.0 and sol[-1] == 0.0 and sol[3] == pytest.approx(170.0)
    tx, signed = aa.magnitude_bins("TranslateX", height=64, width=32)
    assert signed and tx == [float(int(v)) for v in np.linspace(0, 150 / 331 * 32, 10)]
    assert tx[-1] == 14.0 and aa.magnitude_bins("TranslateY", height=64, width=32)[0][-1] == 29.0
    assert aa.magnitude_bins("Rotate")[0][-1] == pytest.approx(30.0)
    assert aa.magnitude_bins("ShearX")[0][-1] == pytest.approx(0.3)
    assert aa.magnitude_bins("Color")[0][9] == pytest.approx(0.9) and aa.magnitude_bins("Color")[1]
    names = [n for n, _, _ in aa.RANDAUG_OPS]
    assert len(names) == 14 and len(set(names)) == 14 and "Identity" in names and "Invert" not in names


# ---------------------------------------------------------------------------------------------------------------------
# AutoAugment / RandAugment end to end


@pytest.mark.parametrize("policy", ["cifar10", "imagenet"])
@pytest.mark.parametrize("c", [3, 1])
def test_autoaugment_matches_pil_reference(policy, c):
    """Each sample's drawn sub-policy replayed with PIL on that one image gives the same pixels."""
    op = aa.AutoAugment(policy, fill=(128, 128, 128))
    b, h, w = 120, 16, 20
    x = _varied(b, c, h, w, seed=14)
    params = op.sample_params(b, h, w, _gen(1))
    out = op.apply(x, params)
    for i in range(b):
        im = _to_pil(x[i])
        sub = op.sub_policies[int(params["sub_policy"][i])]
        for k in range(2):
            name = aa.OPS[int(params["op"][i, k])]
            assert name in ("Identity", sub[k][0])
            im = _pil_op(im, name, float(params["param"][i, k]), (128, 128, 128))
        assert torch.equal(out[i], _from_pil(im, c)), (i, sub, params["op"][i], params["param"][i])


def test_randaugment_matches_pil_reference():
    op = aa.RandAugment(num_ops=4, magnitude="random", cutout=0.5)
    b, h, w = 80, 12, 12
    x = _varied(b, 3, h, w, seed=15)
    params = op.sample_params(b, h, w, _gen(2))
    out = op.apply(x, params)
    for i in range(b):
        im = _to_pil(x[i])
        for k in range(4):
            im = _pil_op(im, aa.OPS[int(params["op"][i, k])], float(params["param"][i, k]), 0)
        v = float(params["size"][i])
        x0 = int(max(0, float(params["cx"][i]) - v / 2))
        y0 = int(max(0, float(params["cy"][i]) - v / 2))
        ImageDraw.Draw(im).rectangle((x0, y0, min(w, x0 + v), min(h, y0 + v)), (125, 123, 114))
        assert torch.equal(out[i], _from_pil(im, 3)), i


def test_autoaugment_draws_follow_the_policy():
    op = aa.AutoAugment("cifar10")
    b = 20000
    params = op.sample_params(b, 32, 32, _gen(3))
    counts = torch.bincount(params["sub_policy"], minlength=25).float() / b
    assert (counts - 1 / 25).abs().max() < 0.012
    applied = (params["op"] != 0).float().mean(0)
    expected = [np.mean([sp[k][1] for sp in aa.CIFAR10_POLICY]) for k in range(2)]
    assert applied.tolist() == pytest.approx(expected, abs=0.015)
    signed = torch.tensor([aa.OPS[int(i)] in ("Rotate", "ShearY", "TranslateX", "TranslateY") for i in
                           params["op"].flatten()])
    neg = (params["param"].flatten()[signed] < 0).float().mean()
    assert abs(float(neg) - 0.5) < 0.03


@pytest.mark.parametrize("policy", ["cifar10", "imagenet"])
def test_autoaugment_fraction_changed(policy):
    """On images where every op with a non-trivial magnitude changes something, the fraction of changed samples
    matches P(at least one effective op) from the table (loose bound), and untouched samples are bit-identical."""
    op = aa.AutoAugment(policy)
    b = 1200
    # 32x32: on tiny images Equalize is often PIL's identity (step = (N - count of the top level) // 255 == 0)
    x = _images(b, 3, 32, 32, seed=16, low=30, high=200)
    params = op.sample_params(b, 32, 32, _gen(4))
    out = op.apply(x, params)
    changed = (out != x).flatten(1).any(1)
    untouched = (params["op"] == 0).all(1)
    assert not changed[untouched].any()

    def effective(name, level):  # ops that leave the image as is at that magnitude
        if name == "Posterize":
            return aa.magnitude_bins("Posterize")[0][level] < 8
        if name in ("Brightness", "Color", "Contrast", "Sharpness"):
            return level > 0
        return True

    p_eff = np.mean([1 - np.prod([1 - p * effective(n, lv) for n, p, lv in sp]) for sp in aa.POLICIES[policy]])
    assert abs(float(changed.float().mean()) - p_eff) < 0.05


def test_same_seed_same_output_and_no_global_rng():
    x = _images(64, 3, 16, 16, seed=17)
    for op in (aa.AutoAugment("cifar10"), aa.AutoAugment("imagenet"), aa.RandAugment()):
        state = torch.get_rng_state()
        a = op(x, _gen(5))
        torch.manual_seed(1234)  # the global RNG must not matter
        b = op(x, _gen(5))
        assert torch.equal(a, b)
        assert not torch.equal(a, op(x, _gen(6)))
        torch.set_rng_state(state)
        op(x, _gen(7))
        assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("shape", [(32, 3, 32, 32), (32, 1, 28, 28), (16, 3, 12, 20)])
def test_dtype_and_range_preserved(shape):
    x = _images(*shape, seed=18)
    for op in (aa.AutoAugment("cifar10"), aa.AutoAugment("imagenet"), aa.RandAugment()):
        out = op(x, _gen(8))
        assert out.dtype == torch.uint8 and out.shape == x.shape
        outf = op(x.float(), _gen(8))
        assert outf.dtype == torch.float32 and outf.min() >= 0 and outf.max() <= 255
        assert torch.equal(outf, out.float())  # float input: same pixels, original dtype


def test_randaugment_always_has_a_cutout_square():
    x = _images(64, 3, 32, 32, seed=19, low=0, high=100)  # the cutout colour cannot occur naturally
    out = aa.RandAugment()(x, _gen(9))
    colour = torch.tensor([125, 123, 114], dtype=torch.uint8).reshape(1, 3, 1, 1)
    has = (out == colour).all(1).flatten(1).any(1)
    assert has.all()
    assert "size" not in aa.RandAugment(cutout=0.0).sample_params(4, 32, 32, _gen(9))
    fixed = aa.RandAugment(magnitude=1.0, cutout=0.0).sample_params(2000, 32, 32, _gen(9))
    rot = fixed["op"] == aa.OPS.index("Rotate")
    assert (fixed["param"][rot] == 30.0).all()  # magnitude 1.0 = the top of each range


# ---------------------------------------------------------------------------------------------------------------------
# views


def test_strong_views_registered_and_run():
    for name in ("strong", "strong_imagenet", "randaug"):
        assert name in VIEWS
    x = _images(16, 3, 32, 32, seed=20)
    for name, opts in (("strong", {}), ("strong", {"policy": "imagenet"}), ("strong_imagenet", {}),
                       ("randaug", {"unused_option": 1})):
        view = build_view(name, mean=MEAN, std=STD, image_size=32, padding=4, **opts)
        assert view.random
        out = view(x, _gen(10))
        assert out.dtype == torch.float32 and out.shape == (16, 3, 32, 32)
        assert torch.equal(out, view(x, _gen(10)))
        lo = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
        hi = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
        assert (out >= lo.reshape(1, 3, 1, 1) - 1e-5).all() and (out <= hi.reshape(1, 3, 1, 1) + 1e-5).all()
        with pytest.raises(ValueError):
            view(x)  # random views refuse to run without a generator
    strong = build_view("strong", mean=MEAN, std=STD, image_size=32, padding=4)
    assert isinstance(strong.ops[2], aa.AutoAugment) and strong.ops[2].policy == "cifar10"
    assert strong.ops[2].fill == (128, 128, 128)
    assert build_view("strong_imagenet", mean=MEAN, std=STD, image_size=32).ops[2].policy == "imagenet"


def test_registration_is_idempotent_but_guards_other_names():
    aa._register()  # what a module reload does: replaces its own factories without an error
    assert VIEWS["strong"] is aa.make_strong_view and VIEWS["randaug"] is aa.make_randaug_view
    saved = VIEWS["strong"]
    try:
        VIEWS["strong"] = lambda **_: None  # someone else's view under the same name
        with pytest.raises(ValueError):
            aa._register()
    finally:
        VIEWS["strong"] = saved


def test_strong_view_timing():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    g = _gen(11)
    for name in ("strong", "randaug"):
        view = build_view(name, mean=MEAN, std=STD, image_size=32, padding=4)
        view(x, g)  # warm-up
        reps = 3
        t0 = time.perf_counter()
        for _ in range(reps):
            view(x, g)
        ms = (time.perf_counter() - t0) / reps * 1000
        print(f"\n{name} view, (256, 3, 32, 32) uint8 on CPU ({torch.get_num_threads()} threads): {ms:.1f} ms/batch")
