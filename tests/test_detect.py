"""noisyclr detect: the ranking and columns of label_issues.csv, the summary and its transition matrices, the
scores, and bad input answered with one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from noisyclr.config import load_config
from noisyclr.detect import detect_run, detection_scores, transition_matrix, wrong_probability
from noisyclr.engine import run_training
from noisyclr.errors import UserError
from tiny_runs import tiny_run


def test_transition_matrix_on_a_constructed_case():
    given = np.array([0, 0, 0, 0, 1, 1, 2])
    estimated = np.array([0, 0, 1, 2, 1, 1, 0])
    counts, rows = transition_matrix(given, estimated, 4)
    assert counts.tolist() == [[2, 1, 1, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert rows[0].tolist() == [0.5, 0.25, 0.25, 0.0] and rows[3].tolist() == [0.0] * 4  # absent label: zeros


def test_scores_and_detection_metrics_by_hand():
    clean = np.array([0.9, 0.2, 0.6])
    given_prob = np.array([0.7, 0.1, 0.2])
    assert np.allclose(wrong_probability(clean, None, "division"), [0.1, 0.8, 0.4])
    assert np.allclose(wrong_probability(clean, given_prob, "model"), [0.3, 0.9, 0.8])
    assert np.allclose(wrong_probability(clean, given_prob, "mean"), [0.2, 0.85, 0.6])
    with pytest.raises(UserError, match="given_prob"):
        wrong_probability(clean, None, "mean")
    s = detection_scores(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    assert s["auc"] == pytest.approx(0.75)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "run"
    cfg = load_config("dividemix-digits-sym50", tiny_run() + ["train.epochs=3", "method.warmup_epochs=1",
                                                              "log.progress=off"])
    run_training(cfg, out)
    return out


def test_label_issues_sorted_with_the_contract_columns(run):
    issues = detect_run(run, score="division")
    with open(issues.csv_path) as handle:
        rows = list(csv.DictReader(handle))
    with open(run / "labels.csv") as handle:
        labels = {int(r["index"]): r for r in csv.DictReader(handle)}
    assert list(rows[0]) == ["index", "given_label", "p_wrong", "suggested_label", "suggested_confidence",
                             "is_issue", "true_label"]
    assert len(rows) == len(labels) == 128
    p = [float(r["p_wrong"]) for r in rows]
    assert p == sorted(p, reverse=True)  # most likely wrong first
    for r in rows:
        lab = labels[int(r["index"])]
        assert float(r["p_wrong"]) == pytest.approx(1 - float(lab["clean_prob"]), abs=2e-6)
        assert r["suggested_label"] == lab["predicted_label"] and r["true_label"] == lab["true_label"]
        assert r["is_issue"] == str(int(float(r["p_wrong"]) > 0.5))
        assert 0.0 <= float(r["suggested_confidence"]) <= 1.0
    s = json.loads(issues.summary_path.read_text())
    assert s["num_issues"] == sum(int(r["is_issue"]) for r in rows)
    assert sum(s["issues_per_given_class"]) == s["num_issues"]
    wrong = [int(r["given_label"]) != int(r["true_label"]) for r in rows]
    assert s["actual_noise_rate"] == pytest.approx(np.mean(wrong))
    assert 0.0 <= s["detection"]["auc"] <= 1.0 and s["detection"]["truly_wrong"] == sum(wrong)
    # the true matrix counts given × true; its off-diagonal mass is the wrong labels
    true = np.array(s["transition_true"]["counts"])
    assert true.sum() == 128 and true.sum() - np.trace(true) == sum(wrong)
    est = np.array(s["transition_estimated"]["counts"])
    assert est.sum() == 128


def test_the_ranking_finds_the_wrong_labels_better_than_chance(run):
    s = detect_run(run).summary
    assert s["score"] == "mean"  # auto: a dividing method's prediction and division together
    assert s["detection"]["auc"] > 0.6  # three tiny epochs, yet well above 0.5


def test_auto_score_per_kind_of_method():
    from noisyclr.detect import resolve_score

    assert resolve_score("auto", "standard", True) == "division"
    assert resolve_score("auto", "dividemix", True) == "mean"
    assert resolve_score("auto", "tcl", False) == "division"  # no given_prob column: the division alone
    assert resolve_score("model", "standard", True) == "model"


def test_cli_detect_and_its_one_line_errors(run, tmp_path):
    out = tmp_path / "issues"
    ok = subprocess.run([sys.executable, "-m", "noisyclr", "detect", str(run), "--out", str(out), "--threshold",
                         "0.3"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (out / "label_issues.csv").is_file() and json.loads((out / "issues_summary.json").read_text())["threshold"] == 0.3
    bad = [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path)], "has no labels.csv"),  # a folder with no division history
        ([str(run), "--score", "vote"], "unknown detect score"),
        ([str(run), "--threshold", "2"], "--threshold must be in [0, 1]"),
    ]
    for args, words in bad:
        res = subprocess.run([sys.executable, "-m", "noisyclr", "detect", *args], capture_output=True, text=True)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in res.stderr, res.stderr


def test_train_then_detect_in_one_command_refuses_a_label_file_that_does_not_match(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([0, 1, 2]))  # 3 labels for a 128-image training set
    res = subprocess.run([sys.executable, "-m", "noisyclr", "detect", "--train", "standard-ce-digits-sym50",
                          "--out", str(tmp_path / "run"), *tiny_run(), "noise.kind=file", f"noise.file={labels}"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
