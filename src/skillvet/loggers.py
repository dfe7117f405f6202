"""Optional metric backends beside metrics.jsonl: TensorBoard and wandb, fed the same numbers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from skillvet.config import Config


class Loggers:
    """Optional backends beside metrics.jsonl: TensorBoard and wandb, fed the same numbers."""

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self.tb = self.wandb = None
        if cfg.log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "log.tensorboard needs the tensorboard package: pip install tensorboard"
                ) from err
            self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if cfg.log.wandb:
            try:
                import wandb
            except ImportError as err:
                raise ImportError("log.wandb needs the wandb package: pip install wandb") from err
            self.wandb = wandb.init(
                project=cfg.log.wandb_project,
                name=run_dir.name,
                dir=str(run_dir),
                config=json.loads(json.dumps(dataclasses.asdict(cfg))),
                resume="allow",
                id=run_dir.name,
            )

    def log(self, prefix: str, record: dict, step: int) -> None:
        flat = {}
        for key, value in record.items():
            if isinstance(value, bool) or key == "iteration":
                continue
            if isinstance(value, int | float):
                flat[f"{prefix}/{key}"] = float(value)
            elif isinstance(value, dict):  # success_by_type, by_type
                for sub, v in value.items():
                    v = v.get("success_rate") if isinstance(v, dict) else v
                    if isinstance(v, int | float):
                        flat[f"{prefix}/{key}/{sub}"] = float(v)
        if self.tb is not None:
            for key, value in flat.items():
                self.tb.add_scalar(key, value, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(flat, step=step)
