"""The Python API: the same operations as the CLI, as functions.

>>> from noisyclr import api
>>> run = api.train("standard-ce-digits-sym50", ["train.epochs=3"], out_dir="runs/ce")
>>> run.summary["test_acc_last"]
"""

from __future__ import annotations

from pathlib import Path

from .config import Config, list_presets, load_config
from .engine import RunResult, evaluate_run, restore_method, run_training


def train(preset_or_config: str | Config, overrides: list[str] | None = None, *, out_dir: str | Path) -> RunResult:
    """Train from a preset name / YAML path (plus ``key=value`` overrides) or a built :class:`Config`."""
    cfg = preset_or_config if isinstance(preset_or_config, Config) else load_config(preset_or_config, overrides)
    return run_training(cfg, out_dir)


def resume(out_dir: str | Path, overrides: list[str] | None = None) -> RunResult:
    """Continue the run in ``out_dir`` from its last checkpoint (``train.epochs=N`` may extend it)."""
    return run_training(None, out_dir, resume=True, overrides=overrides)


def pretrain(preset_or_config: str | Config, overrides: list[str] | None = None, *, out_dir: str | Path):
    """SimCLR pretraining (a ``method.name=simclr`` preset); returns ``(RunResult, encoder path, model card path)``.

    Pass the encoder to any method with ``model.init=<encoder path>``.
    """
    from .pretrain import pretrain as _pretrain

    cfg = preset_or_config if isinstance(preset_or_config, Config) else load_config(preset_or_config, overrides)
    return _pretrain(cfg, out_dir)


def evaluate(out_dir: str | Path, *, device: str | None = None) -> dict:
    """Test accuracy of a run's latest checkpoint."""
    return evaluate_run(out_dir, device=device)


def report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` for a run folder (default ``run_dir/report.html``, or ``out``); returns its path."""
    from .report import write_report

    return write_report(run_dir, out, restore=restore_method)


def presets() -> list[tuple[str, str]]:
    """``(name, description)`` of the shipped presets."""
    return list_presets()


def check_dataset(name: str, root: str | Path | None = None, *, options: dict | None = None,
                  cache_dir: str | Path | None = None):
    """Validate the layout of data source ``name`` under ``root`` (``noisyclr datasets --check``): lists it (or
    loads it, for sources that cannot stream) and returns :class:`noisyclr.data.check.DatasetCheck` (classes,
    images per split, label files read); the first problem raises :class:`~noisyclr.errors.UserError`."""
    from .data.check import check_dataset as _check

    return _check(name, root, options=options, cache_dir=cache_dir)


__all__ = ["train", "resume", "pretrain", "evaluate", "report", "presets", "load_config", "check_dataset"]


def detect(run_dir: str | Path, *, threshold: float = 0.5, score: str = "auto", out_dir: str | Path | None = None):
    """Rank the training labels of a finished run: writes ``label_issues.csv`` and ``issues_summary.json`` (into
    ``out_dir``, default the run folder) and returns :class:`noisyclr.detect.Issues` (docs/detect.md)."""
    from .detect import detect_run

    return detect_run(run_dir, threshold=threshold, score=score, out_dir=out_dir)
