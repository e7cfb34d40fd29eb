"""The real-world presets end to end on the fake layouts of test_realworld_sources: each recipe's own machinery
(epoch samples, best-val selection, multi-crop, the extra test set and top-5) with a tiny network on the CPU."""

import csv

from noisyclr.config import load_config
from noisyclr.engine import run_training
from noisyclr.tracking import read_metrics
from test_realworld_sources import _clothing, _webvision

TINY = ["model.backbone=small_cnn", "model.width=8", "dataset.options.image_size=40", "dataset.crop=32",
        "train.device=cpu", "train.eval_batch_size=64", "dataset.stream=on", "dataset.stream_workers=0",
        "log.report=false", "train.precision=fp32"]


def test_dividemix_clothing1m_recipe(tmp_path):
    root = tmp_path / "Clothing1M"
    _clothing(root)
    out = tmp_path / "run"
    cfg = load_config("dividemix-clothing1m", TINY + [
        f"dataset.root={root}", "model.pretrained=null", "train.epochs=3", "train.batch_size=4",
        "method.warmup_subset=14", "method.division_subset=20"])
    result = run_training(cfg, out)
    rows = read_metrics(out)
    assert [r["phase"] for r in rows] == ["warmup", "semi", "semi"]
    assert all("val_acc_net1" in r and "val_acc_net2" in r for r in rows)  # the shipped clean val, every epoch
    assert all(r["labeled_size"] <= 20 for r in rows[1:])  # divided on the 20-row sample (28 rows in all)
    s = result.summary
    assert s["num_train"] == 28 and s["num_test"] == 14 and "test_top5" in rows[0]  # 14 classes > 10
    assert s["selected"]["rule"] == "best_val" and s["test_acc_selected"] == s["selected"]["test_acc"]
    with open(out / "labels.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 28


def test_dividemix_webvision_reports_both_val_sets_with_top5(tmp_path):
    root = tmp_path / "WebVision"
    _webvision(root)
    extra = ["train.epochs=2", "train.batch_size=2", "method.warmup_batch_size=2"]
    result = run_training(load_config("dividemix-webvision", TINY + [f"dataset.root={root}"] + extra), tmp_path / "r")
    for r in read_metrics(tmp_path / "r"):
        for key in ("test_acc", "test_top5", "imagenet_val_acc", "imagenet_val_top5"):
            assert 0.0 <= r[key] <= 1.0, key
        assert r["test_acc"] <= r["test_top5"] and r["imagenet_val_acc"] <= r["imagenet_val_top5"]
    assert result.summary["num_classes"] == 50 and result.summary["num_train"] == 7


def test_plremix_webvision_recipe_with_multi_crop(tmp_path):
    # 3 classes: PLReMix's prototypes need a training image of every class, which the fake layout has for 0, 1, 2
    root = tmp_path / "WebVision"
    _webvision(root)
    extra = ["dataset.options.num_classes=3", "train.epochs=3", "train.batch_size=2", "method.warmup_batch_size=2",
             "method.proj_dim=16", "method.multi_crop_large=24", "method.multi_crop_small=16",
             "method.kappa_milestones=[1,2]"]
    result = run_training(load_config("plremix-webvision", TINY + [f"dataset.root={root}"] + extra), tmp_path / "r")
    rows = read_metrics(tmp_path / "r")
    assert [r["phase"] for r in rows] == ["warmup", "warmup", "semi"]
    assert all(0.0 <= r["imagenet_val_acc"] <= 1.0 for r in rows) and rows[-1]["train_loss"] == rows[-1]["train_loss"]
    assert result.summary["num_classes"] == 3 and result.summary["num_train"] == 6
