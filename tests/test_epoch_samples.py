"""The real-world recipes' engine pieces: class-balanced epoch samples (DivideMix's Clothing1M loop), best-val
model selection, top-5 accuracy."""

import json
import random
import sys

import numpy as np
import pytest
import torch

from noisyclr.config import load_config
from noisyclr.data.loader import DeviceData
from noisyclr.data.table import FileTable, ImageTable
from noisyclr.engine import run_training
from noisyclr.metrics import topk_accuracy
from noisyclr.selection import balanced_subset
from noisyclr.tracking import read_metrics
from tiny_runs import assert_same_resumed_run, tiny_run


def _cli(capsys, cmd):
    """``python -m noisyclr ...`` (``cmd``) run in this process: its exit code and stderr (a subprocess would spend
    seconds importing torch for a check that answers at once)."""
    from types import SimpleNamespace

    from noisyclr.cli import main

    code = main(cmd[3:])
    return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)


def reference_balanced(labels, size, order):
    """DivideMix's dataloader_clothing1M loop: take a shuffled row while its class has < size/C and < size rows."""
    classes = int(labels.max()) + 1
    taken, count = [], [0] * classes
    for i in order:
        c = int(labels[i])
        if count[c] < size / classes and len(taken) < size:
            taken.append(i)
            count[c] += 1
    return sorted(taken)


@pytest.mark.parametrize("trial", range(20))
def test_balanced_subset_is_the_reference_loop(trial):
    rng = random.Random(trial)
    n, classes = rng.randint(1, 200), rng.randint(1, 6)
    labels = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(trial))
    labels[0] = classes - 1
    size = rng.randint(1, n + 10)
    rows = balanced_subset(labels, size, torch.Generator().manual_seed(trial))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(trial)).tolist()
    assert rows.tolist() == reference_balanced(labels, size, order)


def test_balanced_subset_counts():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 4)
    rows = balanced_subset(labels, 30, torch.Generator().manual_seed(0))
    # quota ceil(30 / 3) = 10: class 2 gives its 4, the others 10 each; small classes are not topped up
    assert torch.bincount(labels[rows]).tolist() == [10, 10, 4]
    assert torch.equal(rows, rows.sort().values) and len(rows.unique()) == 24


def _table(n):
    images = np.arange(n * 2 * 2 * 3, dtype=np.uint8).reshape(n, 2, 2, 3)
    labels = np.arange(n) % 3
    true = labels.copy()
    true[::4] = (true[::4] + 1) % 3
    return ImageTable(images, labels, true, ["a", "b", "c"])


def test_device_data_subset_maps_rows():
    full = DeviceData(_table(12), "cpu")
    index = torch.tensor([7, 2, 11])
    part = full.subset(index)
    assert len(part) == 3 and torch.equal(part.gather(torch.arange(3)), full.gather(index))
    assert torch.equal(part.labels, full.labels[index]) and torch.equal(part.true_labels, full.true_labels[index])
    assert len(full) == 12  # the parent is unchanged


def test_streaming_subset_maps_files(tmp_path):
    from PIL import Image

    from noisyclr.data.stream import StreamingData

    paths = []
    for i in range(6):
        Image.fromarray(np.full((4, 4, 3), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(f"{i}.png")
    table = FileTable(str(tmp_path), paths, np.arange(6) % 2, None, ["x", "y"], (4, 4, 3), workers=0)
    full = StreamingData(table, "cpu")
    part = full.subset(torch.tensor([5, 0, 3]))
    assert part.labels.tolist() == [1, 0, 1]
    chunks = list(part.ordered_chunks(2))
    pixels = torch.cat([raw for _, raw in chunks])[:, 0, 0, 0].tolist()
    assert pixels == [200, 0, 120]
    assert len(full) == 6 and full.gather(torch.tensor([5]))[0, 0, 0, 0] == 200


SAMPLED = tiny_run(train_size=160) + ["train.epochs=3", "method.warmup_epochs=1", "method.warmup_subset=64",
                                      "method.division_subset=96", "method.lambda_u=25"]


def test_dividemix_epochs_run_on_balanced_samples(tmp_path):
    out = tmp_path / "run"
    run_training(load_config("dividemix-digits-sym50", SAMPLED), out)
    rows = read_metrics(out)
    assert [r["phase"] for r in rows] == ["warmup", "semi", "semi"]
    for r in rows[1:]:  # the division is over the 96-row sample, not the 160 rows
        assert 0 < r["labeled_size"] <= 96
        assert r["labeled_size_net1"] <= 96
    # labels.csv is the final division of every row
    assert len((out / "labels.csv").read_text().splitlines()) == 161


def test_sampled_run_resumes_exactly(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    run_training(load_config("dividemix-digits-sym50", SAMPLED), full)
    run_training(load_config("dividemix-digits-sym50", SAMPLED), part, stop_after_epoch=2)
    run_training(None, part, resume=True)
    assert_same_resumed_run(full, part)


def test_division_subset_refuses_loss_averaging(capsys, tmp_path):
    cmd = [sys.executable, "-m", "noisyclr", "train", "dividemix-digits-sym50", "--out", str(tmp_path / "r"),
           *tiny_run(), "method.division_subset=64", "method.loss_average_last=5"]
    proc = _cli(capsys, cmd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "loss_average_last" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_best_val_selects_each_net_at_its_best_val_epoch(tmp_path):
    out = tmp_path / "run"
    args = tiny_run(train_size=160) + ["train.epochs=4", "method.warmup_epochs=1", "dataset.clean_holdout=40",
                                       "train.select=best_val"]
    result = run_training(load_config("dividemix-digits-sym50", args), out)
    rows = read_metrics(out)
    selected = result.summary["selected"]
    for i in (1, 2):
        vals = [r[f"val_acc_net{i}"] for r in rows]
        assert selected["val_acc"][i - 1] == max(vals)
        assert selected["epochs"][i - 1] == 1 + vals.index(max(vals))  # the first epoch with the best val
    assert result.summary["test_acc_selected"] == selected["test_acc"]
    if selected["epochs"] == [len(rows), len(rows)]:  # both best at the end: the last nets
        assert selected["test_acc"] == rows[-1]["test_acc"]
    same = [e for e in range(len(rows)) if selected["epochs"] == [e + 1, e + 1]]
    for e in same:  # both nets from one epoch: the ensemble's test accuracy of that epoch
        assert selected["test_acc"] == rows[e]["test_acc"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["selected"]["epochs"] == selected["epochs"]

    part = tmp_path / "part"  # resumed mid-run, the selection is the same
    run_training(load_config("dividemix-digits-sym50", args), part, stop_after_epoch=2)
    resumed = run_training(None, part, resume=True)
    assert resumed.summary["selected"] == selected


def test_best_val_needs_a_val_split(capsys, tmp_path):
    cmd = [sys.executable, "-m", "noisyclr", "train", "standard-ce-digits-sym50", "--out", str(tmp_path / "r"),
           *tiny_run(), "train.epochs=1", "train.select=best_val"]
    proc = _cli(capsys, cmd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "clean_holdout" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], [0, 2, 9, 0, 0, 1]])  # no ties: topk order is defined
    labels = torch.tensor([5, 5, 1])
    assert topk_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(logits, labels, 5) == pytest.approx(2 / 3)  # row 0's label is its 6th
    assert topk_accuracy(logits, labels, 6) == 1.0


def test_top5_is_logged_above_ten_classes(tmp_path):
    args = [a for a in tiny_run() if not a.startswith("dataset.options")]
    args += ["dataset.options={num_classes: 12, image_size: 8, channels: 3, train_size: 96, test_size: 48, seed: 0}",
             "train.epochs=1"]
    run_training(load_config("standard-ce-digits-sym50", args), tmp_path / "r")
    (row,) = read_metrics(tmp_path / "r")
    assert 0 <= row["test_acc"] <= row["test_top5"] <= 1
    run_training(load_config("standard-ce-digits-sym50", tiny_run() + ["train.epochs=1"]), tmp_path / "r4")
    assert "test_top5" not in read_metrics(tmp_path / "r4")[0]


def _images_trained(out):
    from noisyclr.engine import CHECKPOINT

    return torch.load(out / CHECKPOINT, weights_only=False)["images"]


def test_warmup_and_standard_passes_train_on_their_samples(tmp_path):
    # each net's warm-up pass is its 64-row sample (batch 2B = 32: two batches), not the 160 rows
    args = [a for a in SAMPLED if not a.startswith("train.epochs")] + ["train.epochs=1"]
    run_training(load_config("dividemix-digits-sym50", args), tmp_path / "dm")
    assert _images_trained(tmp_path / "dm") == 2 * 64
    # Ghosh & Lan's Clothing1M pass: a 48-row balanced sample per epoch (3 batches of 16)
    args = tiny_run() + ["train.epochs=2", "method.epoch_subset=48"]
    run_training(load_config("standard-ce-digits-sym50", args), tmp_path / "ce")
    assert _images_trained(tmp_path / "ce") == 2 * 48


def test_balanced_subset_counts_the_problems_classes():
    # the reference divides by its fixed 14 classes, present or not: 3 classes, one empty, quota ceil(30 / 3)
    labels = torch.tensor([0] * 50 + [1] * 50)
    rows = balanced_subset(labels, 30, torch.Generator().manual_seed(0), num_classes=3)
    assert torch.bincount(labels[rows]).tolist() == [10, 10]
    assert len(balanced_subset(labels, 30, torch.Generator().manual_seed(0))) == 30  # default C = 2


def test_dividemix_mix_labeled_only_forwards_the_labeled_rows(tmp_path):
    from noisyclr.methods.dividemix import DivideMix
    from tiny_runs import build_method

    cfg = load_config("dividemix-digits-sym50", tiny_run() + ["method.lambda_u=0", "method.mix_labeled_only=true",
                                                              "method.warmup_epochs=1", "train.epochs=2"])
    method = build_method(cfg)
    seen = []
    forward = method.forwards[0]
    method.forwards[0] = lambda x: seen.append(len(x)) or forward(x)
    method.train_epoch(0)
    seen.clear()
    prob = method.divide(1, 1)
    out = DivideMix.train_semi(method, 0, 1, prob, 1)
    assert out["loss"] == out["loss"] and out["loss"] > 0
    # per step: 4 target passes (2 weak views of u, of x: len B each) and one mixed pass of 2B rows, not 4B
    mixed = [n for i, n in enumerate(seen) if i % 5 == 4]
    assert mixed and all(n == 2 * 16 for n in mixed[:-1])


@pytest.mark.parametrize("extra, needle", [
    (["method.mix_labeled_only=true"], "lambda_u"),
    (["method.lambda_u=0", "method.warmup_subset=3"], "smaller than the 4 classes"),
])
def test_recipe_keys_refused_at_once(capsys, tmp_path, extra, needle):
    cmd = [sys.executable, "-m", "noisyclr", "train", "dividemix-digits-sym50", "--out", str(tmp_path / "r"),
           *tiny_run(), *extra]
    proc = _cli(capsys, cmd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_plremix_refuses_a_class_without_training_images(capsys, tmp_path):
    # synthetic 4 classes, trained on rows of classes 0..2 only via a noise file that never says 3
    labels = [i % 3 for i in range(128)]
    noise = tmp_path / "labels.json"
    noise.write_text(json.dumps(labels))
    cmd = [sys.executable, "-m", "noisyclr", "train", "plremix-digits-sym50", "--out", str(tmp_path / "r"),
           *[a for a in tiny_run() if not a.startswith("noise.")], "noise.kind=file", f"noise.file={noise}"]
    proc = _cli(capsys, cmd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "no training image" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_inception_needs_75_pixels(capsys, tmp_path):
    cmd = [sys.executable, "-m", "noisyclr", "train", "standard-ce-digits-sym50", "--out", str(tmp_path / "r"),
           *tiny_run(), "model.backbone=inception_resnet_v2", "model.width=null"]
    proc = _cli(capsys, cmd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "at least 75x75" in proc.stderr and not (tmp_path / "r").exists()
