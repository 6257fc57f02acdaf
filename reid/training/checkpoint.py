"""Checkpoints: one `state.pt` per checkpoint directory, readable with `torch.load(weights_only=True)`.

Contents: model (unwrapped from DDP), objective (e.g. center-loss centers, schedule buffers), optimisers, LR
scheduler, grad scaler (fp16), the next epoch to run, the best validation mAP so far, and the resolved config (as
YAML text). Random state needs no entry: every random draw of an epoch is derived from (seed, epoch, rank) (see
`reid.training.worker.seed_epoch`) and the data plan from (seed, epoch), so the epoch number restores both.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid.errors import ReidError

STATE_FILE = "state.pt"


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def save_state(directory: str | Path, *, model: nn.Module, objective: nn.Module,
               optimizers: dict[str, torch.optim.Optimizer], scheduler: Any, scaler: Any,
               next_epoch: int, best_map: float, config_yaml: str) -> Path:
    path = Path(directory) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{STATE_FILE}.partial")
    torch.save({
        "model": unwrap(model).state_dict(),
        "objective": objective.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "next_epoch": next_epoch,
        "best_map": best_map,
        "config_yaml": config_yaml,
    }, partial)
    os.replace(partial, path)  # a reader sees the old file or the whole new one, never half of it
    return path


def is_complete(directory: str | Path) -> bool:
    """Whether a checkpoint directory holds a whole `state.pt`.

    torch.save writes a zip archive whose central directory comes last, so a file cut short (a worker killed while
    Ray copied the checkpoint into storage; the copy is not atomic) has none and fails this check. Ray itself never
    restores such a directory (it is not in its checkpoint manager's record); readers of a run directory use this to
    skip it the same way."""
    path = Path(directory)
    path = path / STATE_FILE if path.is_dir() else path
    return path.is_file() and zipfile.is_zipfile(path)


def load_state(directory: str | Path) -> dict[str, Any]:
    path = Path(directory)
    if path.is_dir():
        path = path / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses pickled objects other than tensors and plain containers, so a foreign or tampered
        # file never runs code here; say so instead of surfacing torch's traceback
        raise ReidError(f"checkpoint {path} holds objects other than tensors and plain containers; refusing to "
                        f"unpickle it (torch.load weights_only=True): {str(exc).splitlines()[0]}") from exc


def restore(state: dict[str, Any], *, model: nn.Module, objective: nn.Module,
            optimizers: dict[str, torch.optim.Optimizer], scheduler: Any, scaler: Any) -> None:
    unwrap(model).load_state_dict(state["model"])
    objective.load_state_dict(state["objective"])
    for k, o in optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def init_weights_from(model: nn.Module, source: str | Path) -> list[str]:
    """Two-stage recipes (`train.init_from`): load model weights from a run dir or checkpoint, skipping tensors
    whose shape differs (e.g. the ID classifier when the class count changes). Returns the skipped keys."""
    src = Path(source)
    if src.is_dir() and not (src / STATE_FILE).exists():
        best = src / "best" / STATE_FILE
        src = best if best.exists() else src
    state = load_state(src)["model"]
    target = unwrap(model)
    if hasattr(target, "load_pretrained"):
        return target.load_pretrained(state)
    return load_matching(target, state)


def load_matching(model: nn.Module, state: dict[str, Any]) -> list[str]:
    """Load the tensors of `state` whose name and shape match `model`'s; returns the keys left out (absent from the
    model, or of another shape, such as the ID classifier of a dataset with another identity count)."""
    target = unwrap(model)
    own = target.state_dict()
    skipped = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    target.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    return skipped
