"""Batched augmentation: exact semantics of each primitive, RNG discipline, and the named-view registry."""

import math

import pytest
import torch
import torch.nn.functional as F

from noisyclr.augment import (
    VIEWS, View, build_view, center_crop, make_views, normalize, random_crop, random_hflip,
)
from noisyclr.augment import views as views_module
from noisyclr.errors import UserError

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)


def _images(b, c=3, h=8, w=8, low=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, 256, (b, c, h, w), generator=g, dtype=torch.uint8)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_normalize_exact():
    x = _images(4)
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    out = normalize(x, MEAN, STD)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(normalize(x, torch.tensor(MEAN), torch.tensor(STD)), expected, rtol=0, atol=0)


def test_random_crop_without_padding_is_identity():
    x = _images(5)
    assert torch.equal(random_crop(x, 8, 0, _gen(0)), x)
    assert torch.equal(random_crop(x.float(), (8, 8), 0, _gen(0)), x.float())


def _window_matches(x, out, p):
    """``(B, 2p+1, 2p+1)`` bool: which windows of the zero-padded input equal each output sample."""
    b, c, h, w = x.shape
    padded = F.pad(x, (p, p, p, p))
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, h, w)
    match = (windows == out[:, :, None, None]).flatten(4).all(-1).all(1)  # (B, 2p+1, 2p+1)
    return match


def test_random_crop_is_shifted_window_with_uniform_offsets():
    p, n = 2, 4000
    x = _images(n, low=1)  # no zero pixels, so zeros in the output can only come from padding
    out = random_crop(x, 8, p, _gen(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    match = _window_matches(x, out, p)
    assert torch.equal(match.flatten(1).sum(1), torch.ones(n, dtype=torch.long))  # exactly one window each
    counts = match.sum(0).flatten().double()
    k = counts.numel()
    assert k == (2 * p + 1) ** 2 and (counts > 0).all()
    expected = n / k
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 60, chi2  # 24 degrees of freedom: P(chi2 > 60) < 1e-4

    # Zero rows/cols only at the borders: a zero row is one of the first or last p rows, and zero rows are
    # contiguous from that border.
    zero_rows = (out == 0).all(1).all(-1)  # (B, H)
    zero_cols = (out == 0).all(1).all(-2)  # (B, W)
    for zero in (zero_rows, zero_cols):
        top = zero.long().cumprod(1).sum(1)
        bottom = zero.flip(1).long().cumprod(1).sum(1)
        assert torch.equal(top + bottom, zero.sum(1))
        assert (top <= p).all() and (bottom <= p).all() and ((top == 0) | (bottom == 0)).all()
    assert (out == 0).any(1).sum() == ((out == 0).all(1)).sum()  # zeros are whole pixels, never single channels


def test_random_crop_fill_float_and_rectangular():
    x = torch.rand(64, 2, 6, 6) + 1
    out = random_crop(x, (4, 5), 1, _gen(0), fill=-1.0)
    assert out.shape == (64, 2, 4, 5) and out.dtype == x.dtype
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    windows = padded.unfold(2, 4, 1).unfold(3, 5, 1)  # (B, C, 5, 4, 4, 5)
    assert (windows == out[:, :, None, None]).flatten(4).all(-1).all(1).flatten(1).any(1).all()
    assert (out == -1).any()
    with pytest.raises(ValueError):
        random_crop(x, 9, 1, _gen(0))


def test_random_hflip_rate_and_values():
    n = 20000
    x = _images(n, c=1, h=2, w=4)
    assert not torch.equal(x, x.flip(-1))
    out = random_hflip(x, _gen(3))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped | kept).all()
    symmetric = flipped & kept
    rate = flipped[~symmetric].float().mean().item()
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / n), rate
    assert torch.equal(random_hflip(x, _gen(0), p=0.0), x)
    assert torch.equal(random_hflip(x, _gen(0), p=1.0), x.flip(-1))


def test_center_crop():
    x = _images(2, h=8, w=8)
    assert center_crop(x, 8) is x
    assert torch.equal(center_crop(x, 4), x[..., 2:6, 2:6])
    assert torch.equal(center_crop(x, (3, 5)), x[..., 2:5, 2:7])  # torchvision rounding: round(2.5)=2, round(1.5)=2


def test_weak_view_reproducible_from_seed():
    x = _images(32, h=32, w=32)
    view = build_view("weak", mean=MEAN, std=STD, image_size=32)
    a, b, c = view(x, _gen(7)), view(x, _gen(7)), view(x, _gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g = _gen(7)
    first, second = view(x, g), view(x, g)  # a repeated name gives independent augmentations
    assert torch.equal(first, a) and not torch.equal(first, second)
    # Ops use only the given generator: the global RNG is neither read nor advanced.
    state = torch.random.get_rng_state()
    view(x, _gen(1))
    assert torch.equal(state, torch.random.get_rng_state())
    with pytest.raises(ValueError, match="Generator"):
        view(x)


def test_weak_view_statistics():
    """Mean/std of a normalised weak batch of uniform random images match the analytic values."""
    n, size, p = 4096, 32, 4
    x = torch.randint(0, 256, (n, 3, size, size), generator=_gen(0), dtype=torch.uint8)
    out = build_view("weak", mean=MEAN, std=STD, image_size=size, padding=p)(x, _gen(1))
    assert out.shape == x.shape and out.dtype == torch.float32
    # Per axis, the offset o is uniform on 0..2p and |o − p| rows are padding: valid fraction per axis q1.
    q1 = sum(1 - abs(o - p) / size for o in range(2 * p + 1)) / (2 * p + 1)
    q = q1 * q1
    levels = torch.arange(256, dtype=torch.float64) / 255
    m1, m2 = q * levels.mean().item(), q * (levels ** 2).mean().item()
    for ch in range(3):
        v = out[:, ch].double()
        assert abs(v.mean().item() - (m1 - MEAN[ch]) / STD[ch]) < 0.01
        assert abs(v.std().item() - math.sqrt(m2 - m1 * m1) / STD[ch]) < 0.01


def test_test_view_is_normalise_only():
    x = _images(3)
    view = build_view("test", mean=MEAN, std=STD, image_size=8)
    assert not view.random
    torch.testing.assert_close(view(x), normalize(x, MEAN, STD), rtol=0, atol=0)
    torch.testing.assert_close(view(x, _gen(0)), normalize(x, MEAN, STD), rtol=0, atol=0)


def test_weak_view_padding_and_flip_options():
    x = _images(64, low=1)
    no_aug = build_view("weak", mean=MEAN, std=STD, image_size=8, padding=0, flip=False)
    torch.testing.assert_close(no_aug(x, _gen(0)), normalize(x, MEAN, STD), rtol=0, atol=0)
    digits = build_view("weak", mean=MEAN, std=STD, image_size=8, padding=1, flip=False)
    out = digits(x, _gen(0))
    zero = normalize(torch.zeros(1, 3, 1, 1, dtype=torch.uint8), MEAN, STD)
    padded_rows = (out == zero).all(1).all(-1).sum(1)
    assert padded_rows.max() == 1 and padded_rows.min() == 0


def test_views_registry():
    views = make_views(("weak", "weak", "test"), mean=MEAN, std=STD, image_size=8, padding=1)
    assert list(views) == ["weak", "test"] and all(isinstance(v, View) for v in views.values())
    assert views["weak"].name == "weak"
    with pytest.raises(UserError, match="registered views: test, weak") as err:
        build_view("waek", mean=MEAN, std=STD, image_size=8)
    assert "Did you mean 'weak'" in str(err.value)
    with pytest.raises(UserError):
        build_view("test", mean=(0.5, 0.5), std=(0.2,), image_size=8)


def test_register_custom_view(monkeypatch):
    monkeypatch.setattr(views_module, "VIEWS", dict(VIEWS))

    def make_inverted(*, mean, std, image_size, scale=1.0, **_):
        return View("inverted", [lambda x, g: 255 - x, lambda x, g: normalize(x, mean, std) * scale], random=False)

    views_module.register_view("inverted", make_inverted)
    x = _images(2)
    view = views_module.build_view("inverted", mean=MEAN, std=STD, image_size=8, scale=2.0)
    torch.testing.assert_close(view(x), normalize(255 - x, MEAN, STD) * 2.0, rtol=0, atol=0)
    with pytest.raises(ValueError, match="already registered"):
        views_module.register_view("weak", make_inverted)
    assert "inverted" not in VIEWS  # registered into the patched copy only; the real registry is untouched
