"""Scores of a run: accuracy, and how well a per-sample score separates clean from wrong labels.

All values are fractions in [0, 1]. Functions take NumPy arrays or tensors and return Python floats.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def accuracy(predictions, labels) -> float:
    """Fraction of ``predictions == labels`` (both (N,) integer arrays)."""
    predictions, labels = _np(predictions), _np(labels)
    return float((predictions == labels).mean()) if len(labels) else float("nan")


def topk_accuracy(logits, labels, k: int = 5) -> float:
    """Fraction of rows whose label is among the ``k`` largest of ``logits`` ``(N, C)`` (ties: torch.topk's
    order); ``k >= C`` gives 1. Over all rows at once, not averaged per batch as PLReMix's WebVision code does."""
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels)
    if not len(labels):
        return float("nan")
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == labels.view(-1, 1)).any(1).float().mean())


def clean_auc(clean_score, is_clean) -> float:
    """ROC AUC of ``clean_score`` (higher = more likely clean) for the boolean ``is_clean``.

    For a loss, pass ``-loss``. NaN when only one group is present (no noise, or everything wrong).
    """
    score, truth = _np(clean_score).astype(np.float64), _np(is_clean).astype(bool)
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, score))


def selection_scores(selected, is_clean) -> dict[str, float]:
    """Precision and recall of a selected "clean" set against the truly clean samples.

    ``precision = |S ∩ clean| / |S|``, ``recall = |S ∩ clean| / |clean|``; also the size of S (``labeled_size``).
    """
    selected, truth = _np(selected).astype(bool), _np(is_clean).astype(bool)
    hit = int((selected & truth).sum())
    return {
        "labeled_size": int(selected.sum()),
        "label_precision": hit / int(selected.sum()) if selected.any() else float("nan"),
        "label_recall": hit / int(truth.sum()) if truth.any() else float("nan"),
    }


def class_precision(selected, labels, is_clean, num_classes: int) -> list[float | None]:
    """Per-class precision of a selected set: for each class c of the given (noisy) label,
    ``|S ∩ clean ∩ {ỹ=c}| / |S ∩ {ỹ=c}|``; None for a class with no selected sample.
    """
    selected, labels, truth = _np(selected).astype(bool), _np(labels).astype(np.int64), _np(is_clean).astype(bool)
    counts = np.bincount(labels[selected], minlength=num_classes)
    hits = np.bincount(labels[selected & truth], minlength=num_classes)
    return [float(h / n) if n else None for h, n in zip(hits, counts)]


def class_recall(selected, labels, is_clean, num_classes: int) -> list[float | None]:
    """Per-class recall of a selected set: for each class c, ``|S ∩ clean ∩ {ỹ=c}| / |clean ∩ {ỹ=c}|`` (a clean
    sample's given label is its true class); None for a class with no clean sample.
    """
    selected, labels, truth = _np(selected).astype(bool), _np(labels).astype(np.int64), _np(is_clean).astype(bool)
    clean = np.bincount(labels[truth], minlength=num_classes)
    hits = np.bincount(labels[selected & truth], minlength=num_classes)
    return [float(h / n) if n else None for h, n in zip(hits, clean)]


def defined_mean(values: list[float | None]) -> float:
    """Mean of the non-None entries of a per-class list (NaN when none is defined)."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else float("nan")
