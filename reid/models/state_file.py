"""Reading checkpoints: one `state.pt` per checkpoint directory, loaded with `torch.load(weights_only=True)`.

The writer is the training loop (`reid.training.checkpoint.save_state`); readers are training (resume, two-stage
`train.init_from`), the model factory (`reid.models.factory`) and the evaluation side. This module needs only torch,
so every one of them may import it.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from torch import nn

from reid.errors import ReidError

STATE_FILE = "state.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if hasattr(model, "module") else model


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
    import torch

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
