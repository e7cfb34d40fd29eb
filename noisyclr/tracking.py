"""Run logs: ``metrics.jsonl`` always; TensorBoard and wandb (offline by default) only when asked for.

Neither TensorBoard nor wandb is a dependency: asking for one that is not installed is a UserError that says
how to install it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .config import Config
from .errors import UserError


def _finite(value):
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLogger:
    """Appends one JSON object per epoch to ``metrics.jsonl`` and mirrors scalars to the optional backends."""

    def __init__(self, out_dir: Path, cfg: Config, *, resume_after_epoch: int = 0):
        self.path = Path(out_dir) / "metrics.jsonl"
        self._truncate_after(resume_after_epoch)
        self.tb = None
        self.wandb = None
        if cfg.log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("log.tensorboard=true needs the tensorboard package: pip install tensorboard") from None
            self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
        if cfg.log.wandb:
            try:
                import wandb
            except ImportError:
                raise UserError("log.wandb=true needs the wandb package: pip install wandb (runs offline by default)") from None
            from .config import config_to_dict

            self.wandb = wandb.init(
                project=cfg.log.wandb_project, mode=cfg.log.wandb_mode, dir=str(out_dir), config=config_to_dict(cfg)
            )

    def _truncate_after(self, epoch: int) -> None:
        """On resume, drop rows of epochs after the checkpoint (written before a crash, then redone)."""
        if not self.path.exists():
            return
        text = self.path.read_text()
        rows = parse_metrics(text, self.path)
        keep = [row for row in rows if row.get("epoch", 0) <= epoch]
        if len(keep) != len(rows) or (text and not text.endswith("\n")) or len(rows) != _count_lines(text):
            from .io import atomic_write_text

            atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in keep))

    def log(self, row: dict) -> None:
        """Append ``row`` (must hold ``epoch``) and send its numeric values to the backends."""
        row = {k: _finite(v) for k, v in row.items()}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        step = row["epoch"]
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"}
        if self.tb is not None:
            for key, value in scalars.items():
                if value is not None:
                    self.tb.add_scalar(key, value, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _count_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def parse_metrics(text: str, path: Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` text. A torn last line (the process died while appending it) is dropped:
    its epoch is redone on resume; a bad line anywhere else is a UserError (the file was damaged)."""
    lines = [line for line in text.splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError:
            if i == len(lines) - 1:
                break
            raise UserError(f"{path} line {i + 1} is not a JSON object (the file was damaged); restore it, or delete "
                            "the line and the ones after it to redo those epochs on resume") from None
        rows.append(row)
    return rows


def read_metrics(out_dir: Path) -> list[dict]:
    """All rows of a run's ``metrics.jsonl`` (a torn last line dropped, see :func:`parse_metrics`)."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return parse_metrics(path.read_text(), path)
