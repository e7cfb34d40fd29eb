"""Views at ImageNet scale (issue #16 part 3): ``dataset.crop`` / ``crop_mode`` on the train and test views, PLReMix's
multi-crop (``method.multi_crop``), and the PLR / InfoNCE losses over V = 8 views (docs/data.md, "Views at ImageNet
scale"; docs/methods/plremix.md, "Multi-crop")."""

import math

import pytest
import torch

from noisyclr.augment import build_view, crop_ops
from noisyclr.augment.autoaugment import AutoAugment
from noisyclr.augment.basic import normalize, random_crop, random_hflip, rrc_boxes
from noisyclr.augment.views import RandomResizedCrop
from noisyclr.config import load_config
from noisyclr.data.loader import make_batch
from noisyclr.engine import run_training
from noisyclr.errors import UserError
from noisyclr.losses.contrastive import _tiled_masks, flat_nce_loss, flat_plr_potential, info_nce_loss, plr_loss
from noisyclr.tracking import read_metrics
from tiny_runs import build_method, tiny_run

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRAIN_VIEWS = ("weak", "strong", "strong_imagenet", "randaug", "contrastive", "strong_solarize")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _positions(b=2, side=256):
    """uint8 images whose channel 0 is the row and channel 1 the column of each pixel (channel 2: the sample)."""
    rows = torch.arange(side).view(side, 1).expand(side, side)
    cols = torch.arange(side).view(1, side).expand(side, side)
    x = torch.stack([rows, cols, torch.zeros_like(rows)])
    x = x.unsqueeze(0).repeat(b, 1, 1, 1)
    x[:, 2] = torch.arange(b).view(b, 1, 1)
    return x.to(torch.uint8)


def _random_images(b=2, side=256, seed=0):
    return torch.randint(0, 256, (b, 3, side, side), dtype=torch.uint8, generator=_gen(seed))


# --------------------------------------------------------------------------------------------------------- crop views


@pytest.mark.parametrize("mode", ["random", "resized"])
@pytest.mark.parametrize("kind", TRAIN_VIEWS)
def test_train_views_crop_to_the_crop_side(kind, mode):
    view = build_view(kind, mean=MEAN, std=STD, image_size=64, crop=48, crop_mode=mode)
    out = view(_random_images(3, 64), _gen())
    assert out.shape == (3, 3, 48, 48) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["test", "unit"])
def test_eval_views_centre_crop(kind):
    out = build_view(kind, mean=MEAN, std=STD, image_size=64, crop=48)(_random_images(3, 64), None)
    assert out.shape == (3, 3, 48, 48)


def test_random_crop_of_a_256_batch_is_a_slice_of_it():
    # Clothing1M: Resize(256) (the source's decode) + RandomCrop(224), no padding, before flip and normalise
    x = _positions(4, 256)
    (crop,) = crop_ops(image_size=256, padding=4, flip=False, crop=224)  # padding is not used with a crop
    y = crop(x, _gen(3))
    assert y.shape == (4, 3, 224, 224) and y.dtype == torch.uint8
    offsets = set()
    for i in range(4):
        top, left = int(y[i, 0, 0, 0]), int(y[i, 1, 0, 0])
        assert 0 <= top <= 32 and 0 <= left <= 32
        assert torch.equal(y[i], x[i, :, top:top + 224, left:left + 224])
        offsets.add((top, left))
    assert len(offsets) > 1  # independent offsets per sample


def test_weak_crop_view_is_crop_flip_normalise():
    x = _random_images(4, 256)
    ours = build_view("weak", mean=MEAN, std=STD, image_size=256, crop=224)(x, _gen(5))
    g = _gen(5)
    ref = normalize(random_hflip(random_crop(x, 224, 0, g), g), MEAN, STD)
    assert torch.equal(ours, ref)


def test_test_view_centre_crop_is_exact():
    x = _random_images(2, 256)
    out = build_view("test", mean=MEAN, std=STD, image_size=256, crop=224)(x, None)
    assert torch.equal(out, normalize(x[..., 16:240, 16:240], MEAN, STD))  # torchvision: round((256 - 224) / 2)
    webvision = build_view("test", mean=MEAN, std=STD, image_size=320, crop=299)(_positions(1, 320), None)
    assert webvision.shape[-2:] == (299, 299)


def test_without_a_crop_the_views_are_the_small_image_pipelines():
    """No crop: the weak and strong views are exactly pad-and-crop + flip (+ AutoAugment) + normalise."""
    x = _random_images(4, 32)
    g = _gen(2)
    ref = normalize(random_hflip(random_crop(x, 32, 4, g), g), MEAN, STD)
    assert torch.equal(build_view("weak", mean=MEAN, std=STD, image_size=32, crop=None)(x, _gen(2)), ref)
    g = _gen(2)
    ref = normalize(AutoAugment("cifar10")(random_hflip(random_crop(x, 32, 4, g), g), g), MEAN, STD)
    assert torch.equal(build_view("strong", mean=MEAN, std=STD, image_size=32)(x, _gen(2)), ref)
    assert torch.equal(build_view("test", mean=MEAN, std=STD, image_size=32)(x, None), normalize(x, MEAN, STD))


def test_resized_crop_respects_the_scale_range_and_stays_uint8():
    scale = (0.14, 1.0)
    view = build_view("weak", mean=MEAN, std=STD, image_size=320, crop=299, crop_mode="resized", resized_scale=scale)
    op = view.ops[0]
    assert isinstance(op, RandomResizedCrop) and op.scale == scale and op.mode == "bilinear"
    assert op(_random_images(2, 320), _gen()).dtype == torch.uint8  # later ops (AutoAugment) see 8-bit levels
    H = W = 320
    tol = (0.5 * (H + W) + 0.25) / (H * W)  # w and h are rounded to whole pixels
    for lo, hi in (scale, (0.05, 0.14), (0.7, 1.0)):
        boxes = rrc_boxes(2000, H, W, _gen(1), scale=(lo, hi))
        area = boxes[:, 2] * boxes[:, 3] / (H * W)
        assert area.min() >= lo - tol and area.max() <= hi + tol
        assert area.min() < lo + 0.1 * (hi - lo) and area.max() > hi - 0.1 * (hi - lo)  # the range is used


def test_same_generator_same_views_and_resume():
    kinds = {"weak": ("weak", {}),
             "large": ("strong_imagenet", {"crop": 48, "crop_mode": "resized", "resized_scale": (0.14, 1.0)}),
             "small": ("strong_imagenet", {"crop": 24, "crop_mode": "resized", "resized_scale": (0.05, 0.14)})}
    views = [build_view(k, mean=MEAN, std=STD, image_size=64, **{"crop": 56, **o}) for k, o in kinds.values()]
    x = _random_images(3, 64)
    a = [v(x, _gen(9)) for v in views]
    b = [v(x, _gen(9)) for v in views]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    g = _gen(4)
    views[0](x, g)
    state = g.get_state()  # a checkpoint after one batch
    first = [v(x, g) for v in views]
    g2 = torch.Generator()
    g2.set_state(state)
    assert all(torch.equal(p, v(x, g2)) for p, v in zip(first, views))


# --------------------------------------------------------------------------------------------------------- multi-crop


def _multi_crop_args(*extra):
    return [*tiny_run(), "dataset.options.image_size=40", "dataset.crop=32", "train.epochs=2",
            "method.warmup_epochs=1", "method.proj_dim=16", "method.multi_crop=true", "method.multi_crop_large=24",
            "method.multi_crop_small=16", "method.strong_view=strong_imagenet", "method.warmup_contrastive=infonce",
            "method.contrastive=plr", "train.threads=1", *extra]


def test_multi_crop_views_count_sizes_and_eval_shape():
    method = build_method(load_config("plremix-digits-sym50", _multi_crop_args()))
    ctx = method.ctx
    declared = method.semi_views
    assert list(declared) == ["weak1", "weak2", "strong1", "strong2", *[f"small{j}" for j in range(1, 7)]]
    views = ctx.views(declared)
    idx = torch.arange(8)
    batch = make_batch(ctx.train.gather(idx), ctx.train.labels[idx], idx, views, ctx.generator, None)
    sizes = {name: tuple(batch[name].shape[-2:]) for name in declared}
    assert sizes["weak1"] == sizes["weak2"] == (32, 32)
    assert sizes["strong1"] == sizes["strong2"] == (24, 24)
    assert all(sizes[f"small{j}"] == (16, 16) for j in range(1, 7))
    assert list(method.warmup_views) == ["weak", "strong1", "strong2", *[f"small{j}" for j in range(1, 7)]]
    # the contrastive losses see (N, 8, D): one forward for the large crops, one for the small ones
    forwards = []
    hook = method.nets[0].register_forward_pre_hook(lambda _m, args: forwards.append(tuple(args[0].shape)))
    try:
        features = method.project_views(0, [batch])
        assert features.shape == (8, 8, 16)
        assert forwards == [(16, 3, 24, 24), (48, 3, 16, 16)]
        forwards.clear()
        method.divide(0, epoch=1)  # the eval pass: the test view's centre crop
        assert {s[-2:] for s in forwards} == {(32, 32)}
    finally:
        hook.remove()
    # without multi-crop the strong views keep the dataset crop
    plain = build_method(load_config("plremix-digits-sym50", _multi_crop_args("method.multi_crop=false")))
    assert list(plain.semi_views) == ["weak1", "weak2", "strong1", "strong2"]


def test_tiny_plremix_run_with_multi_crop_finishes_with_finite_losses(tmp_path):
    run_training(load_config("plremix-digits-sym50", _multi_crop_args()), tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    assert [r["phase"] for r in rows] == ["warmup", "semi"]
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in rows)


# --------------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("extra, message", [
    (["dataset.crop=41"], r"dataset.crop=41 is larger than the 40x40 images"),
    (["dataset.crop=0"], r"dataset.crop must be at least 1"),
    (["dataset.crop=null", "dataset.crop_mode=resized"], r"dataset.crop_mode=resized needs dataset.crop=N"),
    (["dataset.crop_mode=rrc"], r"dataset.crop_mode' must be one of random, resized"),
    (["method.multi_crop_large_scale=[0.9,0.2]"], r"method.multi_crop_large_scale must be \[min, max\]"),
    (["method.multi_crop_small_scale=[0,0.1]"], r"method.multi_crop_small_scale must be in \(0, 1\]"),
    (["method.name=bpt_plr"], r"method.multi_crop is PLReMix's --mcrop; method bpt_plr has no multi-crop"),
])
def test_bad_crop_keys_are_one_line_errors(extra, message):
    with pytest.raises(UserError, match=message) as info:
        load_config("plremix-digits-sym50", _multi_crop_args(*extra))
    assert "\n" not in str(info.value)


def test_a_crop_larger_than_the_prepared_images_is_refused_before_training(tmp_path):
    # the config does not say the side (the synthetic source's default is 8x8): the views check the prepared images
    args = [*tiny_run(), "dataset.options={num_classes: 4, train_size: 64, test_size: 16}", "dataset.crop=12",
            "train.epochs=1", "method.warmup_epochs=1", "method.proj_dim=16"]
    with pytest.raises(UserError, match=r"dataset.crop=12 does not fit in the 8x8 images") as info:
        run_training(load_config("plremix-digits-sym50", args), tmp_path / "run")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()  # the new run folder is removed again


# --------------------------------------------------------------------------------------------------------- losses


def _fixed(n, v, d):
    t = torch.arange(n * v * d, dtype=torch.float64)
    return (torch.sin(1.7 * t + 0.3) + 0.5 * torch.cos(0.9 * t)).reshape(n, v, d)


MASK4 = torch.tensor([[1, -1, 0, -1], [-1, 1, -1, 0], [0, -1, 1, -1], [-1, 0, -1, 1]], dtype=torch.int8)


def _reference_losses(features, mask, tau_plr, tau_nce):
    """The spec's formulas (§3.2-§3.3, §2.3) anchor by anchor, in plain loops: (non-flat PLR, InfoNCE)."""
    n, v, _ = features.shape
    z = torch.nn.functional.normalize(features, dim=-1)
    anchors = [(i, a) for a in range(v) for i in range(n)]  # view-major
    plr, nce = 0.0, 0.0
    for i, a in anchors:
        za = z[i, a]
        pos = [z[i, b] for b in range(v) if b != a]
        neg = [z[j, b] for j in range(n) for b in range(v) if j != i and mask[i, j] == -1]
        every_other = [z[j, b] for j in range(n) for b in range(v) if j != i]
        denominator = sum(torch.exp(za @ zb / tau_plr) for zb in pos + neg)
        plr += -sum(za @ zp / tau_plr - torch.log(denominator) for zp in pos) / len(pos)
        nce += sum(-torch.log(torch.exp(za @ zp / tau_nce) / (torch.exp(za @ zp / tau_nce)
                   + sum(torch.exp(za @ zn / tau_nce) for zn in every_other))) for zp in pos) / len(pos)
    return plr / len(anchors), nce / len(anchors)


def test_eight_views_hand_checkable():
    """Two samples, all views of sample 0 on e₀ and of sample 1 on e₁: s = 1 within a sample, 0 across."""
    n, v = 2, 8
    f = torch.zeros(n, v, 2, dtype=torch.float64)
    f[0, :, 0] = 1.0
    f[1, :, 1] = 1.0
    mask = torch.tensor([[1, -1], [-1, 1]], dtype=torch.int8)
    pos, neg = _tiled_masks(mask, v)
    assert pos.shape == (16, 16)
    assert pos.sum(1).tolist() == [7] * 16 and neg.sum(1).tolist() == [8] * 16  # 7 positives, 8 negatives
    assert not pos.diagonal().any()
    e = math.e
    # PLR, τ = 1: ℓ_a = −(1/7) Σ_p [1 − log(7e + 8)]
    assert plr_loss(f, mask, temperature=1.0).item() == pytest.approx(math.log(7 * e + 8) - 1, rel=1e-12)
    # InfoNCE, τ = 1: every positive against the 8 negatives: log(1 + 8/e)
    assert info_nce_loss(f, temperature=1.0).item() == pytest.approx(math.log(1 + 8 / e), rel=1e-12)
    # flat potential, τ = 1: v_a = log Σ_N exp(0 − Σ_P 1) = log 8 − 7; the flat loss is identically 1
    potential, has_neg = flat_plr_potential(f, mask, temperature=1.0)
    assert torch.allclose(potential, torch.full((16,), math.log(8) - 7, dtype=torch.float64)) and has_neg.all()
    assert flat_nce_loss(f, temperature=0.1).item() == pytest.approx(1.0)
    # an ignored pair drops out of the denominator: no negatives, 7 positives → logsumexp_P − mean_P = log 7
    ignored = torch.eye(2, dtype=torch.int8)  # M_01 = 0
    assert plr_loss(f, ignored, temperature=1.0).item() == pytest.approx(math.log(7), rel=1e-12)


def test_eight_views_match_the_formulas_anchor_by_anchor():
    f = _fixed(4, 8, 3)
    plr_ref, nce_ref = _reference_losses(f, MASK4, tau_plr=1.0, tau_nce=0.1)
    assert plr_loss(f, MASK4, temperature=1.0).item() == pytest.approx(plr_ref.item(), rel=1e-10)
    assert info_nce_loss(f, temperature=0.1).item() == pytest.approx(nce_ref.item(), rel=1e-10)


def test_two_views_are_unchanged():
    """V = 2 on fixed tensors: the values the functions gave before multi-crop (pinned), and the formulas."""
    f = _fixed(4, 2, 3)
    assert plr_loss(f, MASK4, temperature=1.0).item() == pytest.approx(1.3923303431635314, rel=1e-12)
    assert plr_loss(f, MASK4, temperature=0.5).item() == pytest.approx(1.4591314850646402, rel=1e-12)
    assert info_nce_loss(f, temperature=0.1).item() == pytest.approx(5.940826548187723, rel=1e-12)
    fr = f.clone().requires_grad_(True)
    plr_loss(fr, MASK4, temperature=1.0, flat=True).backward()
    assert fr.grad.sum().item() == pytest.approx(0.26691996375997007, rel=1e-10)
    assert (fr.grad ** 2).sum().item() == pytest.approx(0.2717726300796713, rel=1e-10)
    plr_ref, nce_ref = _reference_losses(f, MASK4, tau_plr=1.0, tau_nce=0.1)
    assert plr_loss(f, MASK4, temperature=1.0).item() == pytest.approx(plr_ref.item(), rel=1e-10)
    assert info_nce_loss(f, temperature=0.1).item() == pytest.approx(nce_ref.item(), rel=1e-10)
