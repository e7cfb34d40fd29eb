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
        rows = [line for line in self.path.read_text().splitlines() if line.strip()]
        keep = [line for line in rows if json.loads(line).get("epoch", 0) <= epoch]
        if len(keep) != len(rows):
            from .io import atomic_write_text

            atomic_write_text(self.path, "".join(line + "\n" for line in keep))

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


def read_metrics(out_dir: Path) -> list[dict]:
    """All rows of a run's ``metrics.jsonl``."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
