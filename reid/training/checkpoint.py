"""Checkpoints: one `state.pt` per checkpoint directory, readable with `torch.load(weights_only=True)`.

Contents: model (unwrapped from DDP), objective (e.g. center-loss centers, schedule buffers), optimisers, LR
scheduler, grad scaler (fp16), the next epoch to run, the best validation mAP so far, and the resolved config (as
YAML text). Random state needs no entry: every random draw of an epoch is derived from (seed, epoch, rank) (see
`reid.training.worker.seed_epoch`) and the data plan from (seed, epoch), so the epoch number restores both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

# the reading side lives with the model factory (reid.models.state_file); re-exported for the training callers
from reid.models.state_file import (
    STATE_FILE,
    init_weights_from,
    is_complete,
    load_matching,
    load_state,
    unwrap,
)

__all__ = ["STATE_FILE", "init_weights_from", "is_complete", "load_matching", "load_state", "restore", "save_state",
           "unwrap"]


def save_state(directory: str | Path, *, model: nn.Module, objective: nn.Module,
               optimizers: dict[str, torch.optim.Optimizer], scheduler: Any, scaler: Any,
               next_epoch: int, best_map: float, config_yaml: str) -> Path:
    path = Path(directory) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{STATE_FILE}.partial")
    try:
        with open(partial, "wb") as f:  # a file object: its failed write is the OSError behind torch's error
            torch.save({
                "model": unwrap(model).state_dict(),
                "objective": objective.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "next_epoch": next_epoch,
                "best_map": best_map,
                "config_yaml": config_yaml,
            }, f)
    except (RuntimeError, OSError) as exc:  # OSError: the file's own flush when it closes
        partial.unlink(missing_ok=True)  # a full disk gets its space back
        # torch's zip writer reports a failed write as "unexpected pos 704 vs 598", the OSError as its context
        written = exc if isinstance(exc, OSError) else exc.__context__
        if isinstance(written, OSError):
            raise OSError(written.errno, written.strerror, str(path)) from exc
        raise
    os.replace(partial, path)  # a reader sees the old file or the whole new one, never half of it
    return path


def restore(state: dict[str, Any], *, model: nn.Module, objective: nn.Module,
            optimizers: dict[str, torch.optim.Optimizer], scheduler: Any, scaler: Any) -> None:
    unwrap(model).load_state_dict(state["model"])
    objective.load_state_dict(state["objective"])
    for k, o in optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
