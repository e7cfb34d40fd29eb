"""End-to-end runs on tiny synthetic data: the run-folder contract, exact resume, evaluate."""

import json

import pytest
import torch
import yaml

from noisyclr.config import load_config
from noisyclr.engine import CHECKPOINT, run_training
from noisyclr.errors import UserError
from noisyclr.tracking import read_metrics

TINY = [
    "dataset.name=synthetic",
    "dataset.options={num_classes: 4, image_size: 8, channels: 3, train_size: 96, test_size: 48, seed: 0}",
    "noise.kind=sym",
    "noise.rate=0.5",
    "train.epochs=3",
    "train.batch_size=16",
    "train.device=cpu",
    "train.eval_batch_size=32",
    "model.backbone=small_cnn",
    "model.width=8",
]


def tiny(*extra):
    return load_config("standard-ce-digits-sym50", TINY + list(extra))


def test_run_folder_contract(tmp_path):
    out = tmp_path / "run"
    result = run_training(tiny(), out)
    for name in ("config.yaml", "metrics.jsonl", "summary.json", CHECKPOINT, "train_labels.csv"):
        assert (out / name).is_file(), name
    rows = read_metrics(out)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row in rows:
        for key in ("epoch", "test_acc", "train_loss", "lr", "epoch_time_s", "clean_auc"):
            assert key in row, key
        assert 0.0 <= row["test_acc"] <= 1.0 and 0.0 <= row["clean_auc"] <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("method", "dataset", "noise", "epochs", "test_acc_last", "test_acc_best", "wall_time_s",
                "images_per_s", "device", "seed", "version"):
        assert key in summary, key
    assert summary["noise"]["kind"] == "sym" and summary["noise"]["rate"] == 0.5
    assert summary["epochs"] == 3 and summary["test_acc_last"] == rows[-1]["test_acc"]
    assert summary["test_acc_best"] == max(r["test_acc"] for r in rows)
    assert summary["images_per_s"] > 0 and summary == result.summary
    # the saved config reproduces the run's config, and the saved labels are the noisy ones
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"]["name"] == "standard" and saved["noise"]["rate"] == 0.5
    lines = (out / "train_labels.csv").read_text().splitlines()
    assert lines[0] == "index,given_label,true_label" and len(lines) == 97
    wrong = sum(1 for line in lines[1:] if line.split(",")[1] != line.split(",")[2])
    assert 0.2 < wrong / 96 < 0.6  # sym 0.5 over 4 classes corrupts about 37.5%


def _ckpt_weights(path):
    return torch.load(path, weights_only=True)["method"]["nets"][0]


@pytest.mark.parametrize("extra", [[], ["method.loss=gce", "train.schedule=cosine", "train.lr_warmup_epochs=0.5"]])
def test_killed_and_resumed_run_is_bit_identical(tmp_path, extra):
    full, part = tmp_path / "full", tmp_path / "part"
    run_training(tiny(*extra), full)
    run_training(tiny(*extra), part, stop_after_epoch=1)
    assert [r["epoch"] for r in read_metrics(part)] == [1]
    assert not (part / "summary.json").exists()
    resumed = run_training(None, part, resume=True)
    drop = ("epoch_time_s", "train_time_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]
    assert strip(read_metrics(part)) == strip(read_metrics(full))
    a, b = _ckpt_weights(full / CHECKPOINT), _ckpt_weights(part / CHECKPOINT)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.summary["test_acc_last"] == json.loads((full / "summary.json").read_text())["test_acc_last"]


def test_resume_can_extend_epochs_and_rejects_other_changes(tmp_path):
    out = tmp_path / "run"
    run_training(tiny("train.epochs=1"), out)
    result = run_training(None, out, resume=True, overrides=["train.epochs=2"])
    assert result.summary["epochs"] == 2
    with pytest.raises(UserError, match="cannot change when resuming"):
        run_training(None, out, resume=True, overrides=["train.lr=0.5"])


def test_existing_run_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    run_training(tiny("train.epochs=1"), out)
    before = (out / CHECKPOINT).read_bytes()
    with pytest.raises(UserError, match="already holds a finished run"):
        run_training(tiny(), out)
    assert (out / CHECKPOINT).read_bytes() == before


def test_seed_determinism(tmp_path):
    a = run_training(tiny("train.epochs=1"), tmp_path / "a").metrics
    b = run_training(tiny("train.epochs=1"), tmp_path / "b").metrics
    c = run_training(tiny("train.epochs=1", "train.seed=1"), tmp_path / "c").metrics
    assert a[0]["train_loss"] == b[0]["train_loss"]
    assert a[0]["train_loss"] != c[0]["train_loss"]


def test_python_api_train_resume_evaluate(tmp_path):
    from noisyclr import api

    run = api.train("standard-ce-digits-sym50", TINY + ["train.epochs=1"], out_dir=tmp_path / "r")
    assert run.summary["epochs"] == 1
    more = api.resume(tmp_path / "r", ["train.epochs=2"])
    assert more.summary["epochs"] == 2 and len(more.metrics) == 2
    assert api.evaluate(tmp_path / "r")["test_acc"] == pytest.approx(more.summary["test_acc_last"])
    assert any(name == "plremix-digits-sym50" for name, _ in api.presets())
