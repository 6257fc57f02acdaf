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
    _check_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses pickled objects other than tensors and plain containers, so a foreign or tampered
        # file never runs code here; say so instead of surfacing torch's traceback
        raise ReidError(f"checkpoint {path} holds objects other than tensors and plain containers; refusing to "
                        f"unpickle it (torch.load weights_only=True): {str(exc).splitlines()[0]}") from exc


def _check_archive(path: Path) -> None:
    """A ReidError in one line unless `path` is a whole torch.save archive (what torch.load would otherwise report as
    a pickle error or a traceback)."""
    if not path.is_file():
        raise ReidError(f"no checkpoint at {path}")
    if not is_complete(path):  # torch.save's archive: a file cut short, or another kind of file
        raise ReidError(f"{path} is not a whole checkpoint (torch.save's zip archive, as `reid train` writes "
                        f"{STATE_FILE}): cut short, or another kind of file")


def init_source(source: str | Path) -> Path:
    """The checkpoint file `train.init_from` names: a run directory's best checkpoint (`<run>/best/state.pt`), a
    checkpoint directory's state.pt, or a state.pt file itself. A ReidError in one line when there is none (checked
    by `reid train` before anything starts)."""
    if "://" in str(source):
        raise ReidError(f"train.init_from={source}: a local run directory or checkpoint only; copy it from the "
                        f"bucket first")
    src = Path(source)
    for candidate in (src / STATE_FILE, src / "best" / STATE_FILE) if src.is_dir() else (src,):
        if candidate.is_file():
            _check_archive(candidate)
            return candidate
    what = f"a folder without {STATE_FILE} or best/{STATE_FILE}" if src.is_dir() else "not found"
    raise ReidError(f"train.init_from={source}: {what}; give a run directory (its best checkpoint is used), a "
                    f"checkpoint directory holding {STATE_FILE}, or that file")


def init_weights_from(model: nn.Module, source: str | Path) -> list[str]:
    """Two-stage recipes (`train.init_from`): load model weights from a run dir or checkpoint (`init_source`),
    skipping tensors whose shape differs (e.g. the ID classifier when the class count changes). Returns the skipped
    keys."""
    state = load_state(init_source(source))["model"]
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
