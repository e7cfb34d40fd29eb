"""DivideMix and PLReMix end to end on tiny synthetic data: the division output, labels.csv, exact resume."""

import csv

import pytest
import torch

from noisyclr.config import load_config
from noisyclr.engine import CHECKPOINT, run_training
from noisyclr.tracking import read_metrics
from tiny_runs import assert_same_resumed_run, tiny_run

TINY = tiny_run() + ["train.epochs=2", "method.warmup_epochs=1"]


def tiny(preset, *extra):
    return load_config(preset, TINY + list(extra))


@pytest.mark.parametrize("preset", ["dividemix-digits-sym50", "plremix-digits-sym50"])
def test_two_epoch_run_divides_and_writes_labels(tmp_path, preset):
    out = tmp_path / "run"
    result = run_training(tiny(preset, "method.proj_dim=16" if "plremix" in preset else "method.lambda_u=25"), out)
    rows = read_metrics(out)
    assert [r["phase"] for r in rows] == ["warmup", "semi"]
    semi = rows[1]
    for key in ("label_precision", "label_recall", "clean_auc", "labeled_size", "test_acc_net1", "test_acc_net2"):
        assert key in semi, key
    assert 0 < semi["labeled_size"] < 128
    assert 0.0 <= semi["label_precision"] <= 1.0 and 0.0 <= semi["label_recall"] <= 1.0
    assert result.summary["label_precision"] == semi["label_precision"]
    recall = [r for r in semi["class_recall"] if r is not None]
    assert len(semi["class_recall"]) == result.summary["num_classes"] == 4 and recall and semi["class_recall_min"] == min(recall)
    with open(out / "labels.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 128
    assert set(table[0]) == {"index", "given_label", "clean_prob", "predicted_label", "true_label",
                             "predicted_confidence", "given_prob"}
    probs = [float(r["clean_prob"]) for r in table]
    assert all(0.0 <= p <= 1.0 for p in probs) and len(set(probs)) > 2
    # the division must be informative: clean samples get a higher mean clean probability than wrong ones
    clean = [p for r, p in zip(table, probs) if r["given_label"] == r["true_label"]]
    wrong = [p for r, p in zip(table, probs) if r["given_label"] != r["true_label"]]
    assert sum(clean) / len(clean) > sum(wrong) / len(wrong)


@pytest.mark.parametrize(
    "preset, extra",
    [
        ("dividemix-digits-sym50", ["method.loss_average_last=2"]),
        ("plremix-digits-sym50", ["method.proj_dim=16", "method.gmm_backend=torch"]),
    ],
)
def test_resume_is_bit_identical(tmp_path, preset, extra):
    args = ["train.epochs=3", *extra]
    full, part = tmp_path / "full", tmp_path / "part"
    run_training(tiny(preset, *args), full)
    run_training(tiny(preset, *args), part, stop_after_epoch=2)  # stop after the first semi-supervised epoch
    run_training(None, part, resume=True)
    assert_same_resumed_run(full, part, ("prototypes",))


def test_plremix_prototypes_are_unit_rows_and_checkpointed(tmp_path):
    out = tmp_path / "run"
    run_training(tiny("plremix-digits-sym50", "method.proj_dim=16"), out)
    state = torch.load(out / CHECKPOINT, weights_only=True)["method"]["extra"]
    assert len(state["prototypes"]) == 2
    for protos in state["prototypes"]:
        assert protos.shape == (4, 16)
        assert torch.allclose(protos.norm(dim=1), torch.ones(4), atol=1e-5)
    assert 0.0 < float(state["threshold"]["tau"]) <= 1.0
