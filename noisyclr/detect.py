"""Which labels are wrong: a ranked ``label_issues.csv`` and ``issues_summary.json`` from a finished run.

Every method that keeps a per-sample clean probability writes ``labels.csv`` at the end of a run (DivideMix and its
descendants: the last division; TCL: the noise model's w; Manifold DivideMix: w with the OOD samples at 0;
``standard``: the small-loss GMM of the final network). :func:`detect_run` turns it into the list a person fixes
labels from (docs/detect.md):

* ``p_wrong``, the probability that the given label is wrong, by the rule ``score`` (docs/detect.md, "The score");
* ``suggested_label``: the trained model's prediction, with its softmax probability as ``suggested_confidence``;
* ``is_issue`` = ``p_wrong > threshold``; rows sorted by ``p_wrong``, most likely wrong first (ties by index).

``issues_summary.json`` holds the counts, the estimated noise rate, the per-class counts, the estimated noise
transition matrix (given × estimated true label, the suggestion for an issue and the given label otherwise) and,
when the true labels are known, precision / recall / F1 of ``is_issue`` and the AUC / average precision of
``p_wrong`` against the truly wrong labels, with the true transition matrix.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .io import atomic_write_text

SCORES = ("auto", "division", "model", "mean")
# auto: the rule measured best per kind of method (docs/detect.md, "The score"): a network trained on the given
# labels memorises them, so its final prediction says little and the loss history decides; a network trained
# against the noise (the dividing methods) predicts well, and its prediction and division together decide
AUTO = {"standard": "division", "mwnet": "division"}
ISSUES_CSV = "label_issues.csv"
ISSUES_SUMMARY = "issues_summary.json"


# ------------------------------------------------------------------------------------------------------ pure pieces


def resolve_score(score: str, method: str | None, has_given_prob: bool) -> str:
    """The rule ``auto`` stands for: ``division`` for methods trained on the given labels (``standard``, ``mwnet``)
    and for runs without the ``given_prob`` column, ``mean`` for the others; any other name is itself."""
    if score != "auto":
        return score
    if not has_given_prob:
        return "division"
    return AUTO.get(method or "", "mean")


def wrong_probability(clean_prob: np.ndarray, given_prob: np.ndarray | None, score: str = "division") -> np.ndarray:
    """``p_wrong`` per sample (docs/detect.md, "The score"):

    * ``division``: 1 − w, the method's own clean probability;
    * ``model``: 1 − p(ỹ | x), the trained model's softmax probability of the given label;
    * ``mean``: the mean of the two.
    """
    if score not in SCORES[1:]:
        raise UserError(f"unknown detect score '{score}'; choose one of {', '.join(SCORES[1:])} (or auto in detect_run)")
    division = 1.0 - np.clip(np.asarray(clean_prob, dtype=np.float64), 0.0, 1.0)
    if score == "division":
        return division
    if given_prob is None:
        raise UserError(f"score={score} needs the model's probability of the given label (labels.csv column "
                        "given_prob), which this run did not write; use score=division or re-run with this version")
    model = 1.0 - np.clip(np.asarray(given_prob, dtype=np.float64), 0.0, 1.0)
    return model if score == "model" else (division + model) / 2


def transition_matrix(given: np.ndarray, estimated: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, rows)``: ``counts[g, e]`` = number of samples with given label g and estimated true label e, and
    the row-normalised ``rows[g, e]`` = P(estimated true = e | given = g) (a row of zeros for an absent label).

    With the true labels as ``estimated`` this is the data set's real given × true matrix.
    """
    given = np.asarray(given, dtype=np.int64)
    estimated = np.asarray(estimated, dtype=np.int64)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (given, estimated), 1)
    totals = counts.sum(axis=1, keepdims=True)
    rows = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)
    return counts, rows


def detection_scores(p_wrong: np.ndarray, is_issue: np.ndarray, truly_wrong: np.ndarray) -> dict:
    """Precision, recall and F1 of ``is_issue`` and AUC / average precision of ``p_wrong`` against
    ``truly_wrong`` (NaN where undefined: no issue flagged, or no wrong / no right label at all)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    truly_wrong = np.asarray(truly_wrong, dtype=bool)
    is_issue = np.asarray(is_issue, dtype=bool)
    hit = int((is_issue & truly_wrong).sum())
    precision = hit / int(is_issue.sum()) if is_issue.any() else float("nan")
    recall = hit / int(truly_wrong.sum()) if truly_wrong.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    both = truly_wrong.any() and not truly_wrong.all()
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "auc": float(roc_auc_score(truly_wrong, p_wrong)) if both else float("nan"),
        "average_precision": float(average_precision_score(truly_wrong, p_wrong)) if both else float("nan"),
        "truly_wrong": int(truly_wrong.sum()),
    }


# ------------------------------------------------------------------------------------------------------ run folders


@dataclass
class Issues:
    """What :func:`detect_run` found: the sorted rows and the summary (also written to the run folder)."""

    csv_path: Path
    summary_path: Path
    summary: dict
    order: np.ndarray  # sample indices, most likely wrong first


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _column(rows: list[dict], name: str, path: Path, kind=float, optional: bool = False):
    if rows and name not in rows[0]:
        if optional:
            return None
        raise UserError(f"{path} has no column '{name}'; it is not a labels.csv written by noisyclr")
    try:
        return np.array([kind(r[name]) if r[name] != "" else -1 for r in rows])
    except ValueError:
        raise UserError(f"{path}: column '{name}' holds a value that is not a number; the file is damaged") from None


def detect_run(run_dir: str | Path, *, threshold: float = 0.5, score: str = "auto",
               out_dir: str | Path | None = None) -> Issues:
    """Rank the training labels of the run in ``run_dir`` and write ``label_issues.csv`` and
    ``issues_summary.json`` (into ``out_dir``, default the run folder). See the module docstring."""
    run = Path(run_dir).expanduser()
    if not run.is_dir():
        raise UserError(f"run folder {run} does not exist; give the --out folder of a finished noisyclr train run")
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold must be in [0, 1], got {threshold:g}; e.g. --threshold 0.5")
    if score not in SCORES:
        raise UserError(f"unknown detect score '{score}'; choose one of {', '.join(SCORES)}")
    labels_path = run / "labels.csv"
    if not labels_path.is_file():
        method = _method_name(run)
        why = f"method {method} " if method else ""
        raise UserError(f"{run} has no labels.csv: {why}left no per-sample clean probability (the run did not finish, "
                        "or it is a pretraining run); detect needs a finished noisyclr train run")
    _, rows = _read_csv(labels_path)
    if not rows:
        raise UserError(f"{labels_path} has no rows; the run's training set was empty")
    index = _column(rows, "index", labels_path, int)
    given = _column(rows, "given_label", labels_path, int)
    clean = _column(rows, "clean_prob", labels_path)
    pred = _column(rows, "predicted_label", labels_path, int)
    conf = _column(rows, "predicted_confidence", labels_path, optional=True)
    given_prob = _column(rows, "given_prob", labels_path, optional=True)
    true = _column(rows, "true_label", labels_path, int, optional=True)
    if not np.array_equal(index, np.arange(len(rows))):
        raise UserError(f"{labels_path}: the index column is not 0..N-1 in order; the file is damaged")
    paths = _paths(run, len(rows))
    num_classes = _num_classes(run, given, pred, true)

    score = resolve_score(score, _method_name(run), given_prob is not None)
    p_wrong = wrong_probability(clean, given_prob, score)
    is_issue = p_wrong > threshold
    order = np.lexsort((index, -p_wrong))  # p_wrong descending, ties by index
    estimated = np.where(is_issue, pred, given)

    header = ["index"] + (["path"] if paths is not None else []) + ["given_label", "p_wrong", "suggested_label",
                                                                    "suggested_confidence", "is_issue"]
    header += ["true_label"] if true is not None else []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i in order:
        row = [int(i)] + ([paths[i]] if paths is not None else [])
        row += [int(given[i]), f"{p_wrong[i]:.6f}", int(pred[i]), "" if conf is None else f"{conf[i]:.6f}",
                int(is_issue[i])]
        if true is not None:
            row.append(int(true[i]))
        writer.writerow(row)

    counts, rows_norm = transition_matrix(given, estimated, num_classes)
    summary = {
        "run": str(run),
        "score": score,
        "threshold": threshold,
        "num_samples": int(len(rows)),
        "num_issues": int(is_issue.sum()),
        "estimated_noise_rate": float(is_issue.mean()),
        "issues_per_given_class": np.bincount(given[is_issue], minlength=num_classes).tolist(),
        "samples_per_given_class": np.bincount(given, minlength=num_classes).tolist(),
        "transition_estimated": {"counts": counts.tolist(), "rows": rows_norm.round(6).tolist()},
    }
    known = true is not None and bool((true >= 0).all())
    if true is not None:
        wrong = true != given  # an OOD slot (true label -1) is wrong by definition
        summary["actual_noise_rate"] = float(wrong.mean())
        summary["detection"] = detection_scores(p_wrong, is_issue, wrong)
        if known:
            t_counts, t_rows = transition_matrix(given, true, num_classes)
            summary["transition_true"] = {"counts": t_counts.tolist(), "rows": t_rows.round(6).tolist()}
    out = Path(out_dir).expanduser() if out_dir is not None else run
    out.mkdir(parents=True, exist_ok=True)
    csv_path, summary_path = out / ISSUES_CSV, out / ISSUES_SUMMARY
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(summary_path, json.dumps(_finite(summary), indent=2) + "\n")
    return Issues(csv_path, summary_path, summary, order)


def _finite(value):
    """NaN → None (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return None if value != value else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _method_name(run: Path) -> str | None:
    summary = run / "summary.json"
    if summary.is_file():
        try:
            return json.loads(summary.read_text()).get("method")
        except (OSError, ValueError):
            return None
    return None


def _paths(run: Path, n: int) -> list[str] | None:
    """The training files of a folder source, from ``train_labels.csv`` (None when the source has no files)."""
    path = run / "train_labels.csv"
    if not path.is_file():
        return None
    header, rows = _read_csv(path)
    if "path" not in header:
        return None
    if len(rows) != n:
        raise UserError(f"{path} has {len(rows)} rows but labels.csv has {n}; the run folder mixes two runs")
    return [r["path"] for r in rows]


def _num_classes(run: Path, given: np.ndarray, pred: np.ndarray, true: np.ndarray | None) -> int:
    summary = run / "summary.json"
    if summary.is_file():
        try:
            c = json.loads(summary.read_text()).get("num_classes")
            if isinstance(c, int) and c > 0:
                return c
        except (OSError, ValueError):
            pass
    seen = [given.max(), pred.max()] + ([true.max()] if true is not None else [])
    return int(max(seen)) + 1
