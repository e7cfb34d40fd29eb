import math

import numpy as np
import pytest

from noisyclr.config import TrainConfig
from noisyclr.metrics import accuracy, clean_auc, selection_scores
from noisyclr.schedules import learning_rate


def test_multistep_is_dividemix_schedule():
    cfg = TrainConfig(lr=0.02, schedule="multistep", milestones=[150], gamma=0.1, epochs=300)
    assert learning_rate(cfg, 149) == pytest.approx(0.02)
    assert learning_rate(cfg, 150) == pytest.approx(0.002)


def test_step_and_cosine_values():
    cfg = TrainConfig(lr=1.0, schedule="step", step_size=10, gamma=0.5)
    assert [learning_rate(cfg, e) for e in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cos = TrainConfig(lr=1.0, schedule="cosine", epochs=10)
    assert learning_rate(cos, 0) == pytest.approx(1.0)
    assert learning_rate(cos, 5) == pytest.approx(0.5)
    assert learning_rate(cos, 10) == pytest.approx(0.0, abs=1e-12)
    per_step = TrainConfig(lr=1.0, schedule="cosine", epochs=10, cosine_per_step=True)
    assert learning_rate(per_step, 4, step=50, steps_per_epoch=100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.45)))


def test_linear_warmup_reaches_base_lr():
    cfg = TrainConfig(lr=0.1, schedule="constant", lr_warmup_epochs=1)
    lrs = [learning_rate(cfg, 0, s, 10) for s in range(10)]
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(lrs, lrs[1:]))
    assert learning_rate(cfg, 1, 0, 10) == pytest.approx(0.1)


def test_accuracy_auc_selection_exact():
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
    clean = np.array([True, True, False, False])
    assert clean_auc(np.array([0.9, 0.8, 0.1, 0.2]), clean) == 1.0
    assert clean_auc(np.array([0.1, 0.2, 0.9, 0.8]), clean) == 0.0
    assert clean_auc(np.array([0.9, 0.1, 0.8, 0.2]), clean) == 0.5
    assert math.isnan(clean_auc(np.ones(3), np.ones(3, bool)))
    s = selection_scores(np.array([True, True, True, False]), clean)
    assert s == {"labeled_size": 3, "label_precision": 2 / 3, "label_recall": 1.0}
