"""SimCLR: the contrastive view (crop boxes, resampling, HSV, jitter), the loss and k-NN monitor, pretrain + export,
the pretrain CLI verb, and a short pretrain → fine-tune run on synthetic data."""

import colorsys
import json
import math
import random
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from noisyclr.augment import build_view
from noisyclr.augment.contrastive import (
    adjust_hue,
    color_jitter,
    hsv_to_rgb,
    random_grayscale,
    resized_crop,
    rgb_to_hsv,
    rrc_boxes,
)
from noisyclr.cli import main
from noisyclr.config import load_config
from noisyclr.engine import CHECKPOINT, run_training
from noisyclr.errors import UserError
from noisyclr.methods.simclr import SimCLR
from noisyclr.neighbours import knn_predict
from noisyclr.pretrain import pretrain
from noisyclr.tracking import read_metrics

SYN = [
    "dataset.name=synthetic",
    "dataset.options={num_classes: 4, image_size: 8, channels: 3, train_size: 96, test_size: 48, seed: 0}",
    "train.batch_size=32",
    "train.device=cpu",
    "train.eval_batch_size=64",
    "model.width=8",
]
PRE = SYN + ["train.epochs=2", "method.knn_k=10", "method.proj_dim=16", "train.lr_warmup_epochs=0.5"]


def _images(b=16, c=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, size, size), generator=g, dtype=torch.uint8)


# ------------------------------------------------------------------------------------------------------------------
# view


def test_contrastive_view_is_unnormalised_seeded_and_uses_only_its_generator():
    x = _images()
    a = build_view("contrastive", mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), image_size=8)
    b = build_view("contrastive", mean=(0.1, 0.1, 0.1), std=(0.9, 0.9, 0.9), image_size=8)  # mean/std ignored
    torch.manual_seed(123)
    out1 = a(x, torch.Generator().manual_seed(7))
    state = torch.get_rng_state()
    out2 = b(x, torch.Generator().manual_seed(7))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is not touched
    assert torch.equal(out1, out2) and out1.dtype == torch.float32 and out1.shape == x.shape
    assert out1.min() >= 0 and out1.max() <= 1
    g = torch.Generator().manual_seed(7)
    first, second = a(x, g), a(x, g)
    assert not torch.equal(first, second)  # the generator advances: two independent views
    grey = build_view("contrastive", mean=(0.5,), std=(0.2,), image_size=8)(_images(c=1), torch.Generator().manual_seed(0))
    assert grey.shape == (16, 1, 8, 8) and 0 <= grey.min() and grey.max() <= 1
    unit = build_view("unit", mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), image_size=8)(x, None)
    assert torch.allclose(unit, x.float() / 255)


def _torchvision_box(H, W, scale, ratio, rnd):
    """``RandomResizedCrop.get_params`` written out with Python's random (the reference loop)."""
    area = H * W
    for _ in range(10):
        target = area * rnd.uniform(*scale)
        aspect = math.exp(rnd.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= W and 0 < h <= H:
            return rnd.randint(0, H - h), rnd.randint(0, W - w), h, w
    return 0, 0, H, W


def test_rrc_boxes_follow_the_torchvision_sampler():
    H, W, n = 32, 24, 20000
    boxes = rrc_boxes(n, H, W, torch.Generator().manual_seed(0), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= H).all() and (left + w <= W).all()
    assert (h >= 1).all() and torch.equal(h, h.round()) and torch.equal(top, top.round())
    rnd = random.Random(0)
    ref = torch.tensor([_torchvision_box(H, W, (0.08, 1.0), (3 / 4, 4 / 3), rnd) for _ in range(n)], dtype=torch.float64)
    for ours, theirs in ((h * w / (H * W), ref[:, 2] * ref[:, 3] / (H * W)), (w / h, ref[:, 3] / ref[:, 2]), (top, ref[:, 0])):
        assert abs(ours.mean() - theirs.mean()) < 0.02 * max(1.0, float(theirs.mean()))
        assert abs(ours.std() - theirs.std()) < 0.03 * max(1.0, float(theirs.std()))
    # an impossible aspect range falls back to the centred crop with the ratio clamped (torchvision)
    wide = rrc_boxes(4, 10, 40, torch.Generator().manual_seed(0), scale=(0.99, 1.0), ratio=(0.9, 1.1))
    assert wide[:, 2:].tolist() == [[10.0, 11.0]] * 4 and wide[:, 1].tolist() == [14.0] * 4


def test_resized_crop_identity_and_interior_matches_interpolate():
    x = _images(4, 3, 16)
    full = torch.tensor([[0.0, 0.0, 16.0, 16.0]]).repeat(4, 1)
    assert torch.equal(resized_crop(x, full, 16).round().to(torch.uint8), x)
    box = torch.tensor([[4.0, 2.0, 8.0, 8.0]]).repeat(4, 1)  # rows 4..11, cols 2..9, upsampled x2
    ours = resized_crop(x, box, 16, mode="bilinear")
    ref = F.interpolate(x[:, :, 4:12, 2:10].float(), size=16, mode="bilinear", align_corners=False)
    assert torch.allclose(ours[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-3)  # edges read 1 px outside the box


def test_hsv_round_trip_and_hue_rotation():
    x = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    hsv = rgb_to_hsv(x)
    for b, i, j in ((0, 0, 0), (1, 4, 5), (0, 2, 3)):
        assert torch.allclose(hsv[b, :, i, j], torch.tensor(colorsys.rgb_to_hsv(*x[b, :, i, j].tolist())), atol=1e-6)
    assert torch.allclose(hsv_to_rgb(hsv), x, atol=1e-6)
    red = torch.tensor([255.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(adjust_hue(red, torch.tensor([1 / 3])), torch.tensor([0.0, 255.0, 0.0]).view(1, 3, 1, 1), atol=1e-3)
    assert torch.allclose(adjust_hue(x * 255, torch.zeros(2)), x * 255, atol=1e-3)


def test_color_jitter_and_grayscale_probabilities():
    x = _images(2000, 3, 4).float()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(color_jitter(x, g, p=0.0), x)
    out = color_jitter(x, g, p=0.8)
    changed = (out - x).abs().flatten(1).amax(1) > 1e-3
    assert abs(changed.float().mean().item() - 0.8) < 0.04
    assert out.min() >= 0 and out.max() <= 255
    grey = random_grayscale(x, g, p=1.0)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    some = random_grayscale(x, g, p=0.2)
    assert abs((some[:, 0] == some[:, 2]).flatten(1).all(1).float().mean().item() - 0.2) < 0.04


# ------------------------------------------------------------------------------------------------------------------
# loss and k-NN


def test_simclr_loss_is_nt_xent_hand_value():
    # sample 0: views a = (1, 0), a' = (0.6, 0.8); sample 1: b = b' = (0, 1); τ = 0.5. Per anchor −log softmax of
    # the positive against itself + the two views of the other sample:
    #   a : pos 0.6, negs 0, 0     → log(1 + 2 e^{−1.2})
    #   a': pos 0.6, negs 0.8, 0.8 → log(1 + 2 e^{0.4})
    #   b, b': pos 1, negs 0, 0.8  → log(1 + e^{−2} + e^{−0.4})
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    per_anchor = [math.log(1 + 2 * math.exp(-1.2)), math.log(1 + 2 * math.exp(0.4))]
    per_anchor += 2 * [math.log(1 + math.exp(-2) + math.exp(-0.4))]
    hand = sum(per_anchor) / 4
    fake = SimpleNamespace(mcfg=SimpleNamespace(temperature=0.5))
    assert SimCLR.loss(fake, z1, z2).item() == pytest.approx(hand, rel=1e-5, abs=1e-6)
    assert SimCLR.loss(fake, 3 * z1, 2 * z2).item() == pytest.approx(hand, rel=1e-5, abs=1e-6)  # normalised inside


def test_knn_predict_weighted_vote():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    query = torch.tensor([[1.0, 0.05], [0.2, 1.0]])
    assert knn_predict(bank, labels, query, 2, k=2).tolist() == [0, 1]
    # k = 5: three votes for class 1 but much smaller weights for the first query at τ = 0.1
    assert knn_predict(bank, labels, query, 2, k=5, temperature=0.1).tolist() == [0, 1]
    assert knn_predict(bank, labels, query, 2, k=5, temperature=100.0).tolist() == [1, 1]  # ~unweighted majority


# ------------------------------------------------------------------------------------------------------------------
# runs


def test_pretrain_exports_encoder_and_model_card(tmp_path):
    result, encoder, card_path = pretrain(load_config("simclr-digits", PRE), tmp_path / "pre")
    rows = read_metrics(tmp_path / "pre")
    assert [r["epoch"] for r in rows] == [1, 2] and all(math.isfinite(r["train_loss"]) for r in rows)
    assert all(0 <= r["knn_acc"] <= 1 and r["test_acc"] == r["knn_acc"] for r in rows)
    assert result.summary["method"] == "simclr" and result.summary["images_per_s"] > 0
    state = torch.load(encoder, weights_only=True)
    ckpt = torch.load(tmp_path / "pre" / CHECKPOINT, weights_only=True)
    assert ckpt["method"]["optimizers"][0]["param_groups"][0]["lars_adapt"] is True  # LARS from the preset
    net_keys = ckpt["method"]["nets"][0]
    assert set(state) == {k[len("backbone."):] for k in net_keys if k.startswith("backbone.")}
    assert all(torch.equal(state[k], net_keys["backbone." + k]) for k in state)
    card = json.loads(card_path.read_text())
    for key in ("sha256", "model", "input", "data", "recipe", "loss_curve", "knn_acc_curve", "knn_test_acc", "epochs"):
        assert key in card, key
    assert card["model"]["backbone"] == "small_cnn" and card["model"]["in_channels"] == 3
    assert card["input"]["normalisation"] == "none" and card["data"]["labels_used_for_training"] is False
    assert card["loss_curve"] == [r["train_loss"] for r in rows] and card["knn_test_acc"] == rows[-1]["knn_acc"]
    assert card["epochs"] == 2 and card["recipe"]["method"]["temperature"] == 0.5


def test_pretrain_then_finetune_standard_and_mwnet(tmp_path):
    pretrain(load_config("simclr-digits", PRE), tmp_path / "pre")
    encoder = tmp_path / "pre" / "encoder.pt"
    fine = SYN + ["noise.rate=0.5", "train.epochs=2", "dataset.mean=[0,0,0]", "dataset.std=[1,1,1]",
                  "dataset.clean_holdout=16", f"model.init={encoder}"]
    for preset in ("standard-ce-simclr-digits-sym50", "mwnet-simclr-digits-sym50", "standard-gce-simclr-digits-sym50"):
        result = run_training(load_config(preset, fine), tmp_path / preset)
        assert result.summary["epochs"] == 2 and result.summary["test_acc_at_best_val"] is not None
        assert all("val_acc" in r and "test_acc" in r for r in result.metrics)
    # a normalised fine-tuning run is refused: the encoder saw [0, 1] inputs
    bad = fine + ["dataset.mean=[0.5,0.5,0.5]", "dataset.std=[0.2,0.2,0.2]"]
    with pytest.raises(UserError, match="unnormalised"):
        run_training(load_config("standard-ce-simclr-digits-sym50", bad), tmp_path / "bad")


def test_simclr_resume_is_bit_identical(tmp_path):
    cfg = load_config("simclr-digits", PRE + ["train.epochs=2", "method.knn_every=2"])
    full = run_training(cfg, tmp_path / "full")
    run_training(cfg, tmp_path / "part", stop_after_epoch=1)
    resumed = run_training(None, tmp_path / "part", resume=True)
    drop = ("epoch_time_s", "train_time_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(full.metrics)
    assert full.metrics[0]["test_acc"] is None and full.metrics[1]["test_acc"] is not None  # knn_every=2
    a = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=True)["method"]["nets"]
    b = torch.load(tmp_path / "part" / CHECKPOINT, weights_only=True)["method"]["nets"]
    assert all(torch.equal(a[i][k], b[i][k]) for i in range(len(a)) for k in a[i])


def test_pretrain_cli_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["pretrain", "simclr-digits", *PRE, "train.epochs=1", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0 and "k-NN test acc" in stdout and "model.init=" in stdout, err
    assert (out / "encoder.pt").is_file() and (out / "model_card.json").is_file()
    code = main(["pretrain", "--resume", str(out), "train.epochs=2"])
    stdout, _ = capsys.readouterr()
    assert code == 0 and json.loads((out / "model_card.json").read_text())["epochs"] == 2
    for args, needle in (
        (["pretrain", "standard-ce-digits-sym50", "--out", str(tmp_path / "x")], "method.name=simclr"),
        (["pretrain", "simclr-digits"], "--out"),
        (["pretrain", "simclr-digits", "method.crop_scale=[0.5, 0.2]", "--out", str(tmp_path / "y")], "crop_scale"),
        (["train", "standard-ce-simclr-digits-sym50", "--out", str(tmp_path / "z"), f"model.init={tmp_path}/none.pt"],
         "does not exist"),
        (["train", "mwnet-simclr-digits-sym50", "dataset.clean_holdout=0", "--out", str(tmp_path / "w")], "clean_holdout"),
    ):
        code = main(args)
        _, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
