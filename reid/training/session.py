"""Where a worker loop runs: in-process (`ray.num_workers=0`, tests, debugging) or as a Ray Train worker.

The loop in `reid.training.worker` only talks to a Session: it asks for the epoch's batches, the checkpoint to
resume from, and reports metrics (+ a checkpoint) at the end of each epoch. `LocalSession` keeps checkpoints under
`<storage>/<run>/checkpoints/` itself; `reid.training.ray_session.RaySession` delegates to Ray Train.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import torch

from reid.training.checkpoint import STATE_FILE, load_state


def link_or_copy(src: str, dst: str) -> None:
    """A hard link of a checkpoint file (written once, never changed), or a copy where the filesystem has none."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def replace_dir(target: Path, write: Callable[[Path], None]) -> None:
    """`write` fills `<target>.tmp`, which then replaces `target` with a rename: a crash or a full disk mid-write
    leaves the previous `target` whole and no half-written one that looks complete (the partial .tmp is removed)."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk gets its space back
        raise
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


class Session:
    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1  # the workers on this worker's node (they share its memory)
    device: torch.device = torch.device("cpu")

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def start_data(self, epoch: int) -> None:
        """Start producing the batches of `epoch` (and the epochs after it) in the background, so that the data
        path starts up while the model is built; `epoch_batches(epoch)` then begins with what is ready. A no-op
        where batches are made in this process on demand."""

    def epoch_batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def resume_state(self) -> tuple[dict[str, Any], str] | None:
        """The state of the checkpoint to resume from (`reid.training.checkpoint.load_state`) and where that
        checkpoint is (for the console), or None for a fresh start."""
        raise NotImplementedError

    def report(self, metrics: dict[str, Any], write_checkpoint: Callable[[Path], None] | None) -> None:
        """End of epoch: record metrics; when given, `write_checkpoint(dir)` fills a checkpoint directory."""
        raise NotImplementedError

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj]

    def console(self) -> TextIO:
        """Where the per-epoch line goes."""
        return sys.stdout

    def run_dir(self) -> Path:
        raise NotImplementedError


class LocalSession(Session):
    """Single process, no Ray: batches come from the pure-python pipeline (`iter_local_batches`)."""

    def __init__(self, run_dir: Path, batches: Callable[[int], Iterator[dict[str, Any]]], keep: int = 2,
                 on_epoch: Callable[[dict[str, Any], Path | None], None] | None = None) -> None:
        self._run_dir = run_dir
        self._on_epoch = on_epoch
        self._batches = batches
        self._keep = keep
        self.history: list[dict[str, Any]] = []
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)

    def run_dir(self) -> Path:
        return self._run_dir

    def epoch_batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        return self._batches(epoch)

    def checkpoints(self) -> list[Path]:
        return sorted(p for p in (self._run_dir / "checkpoints").glob("epoch_*") if (p / STATE_FILE).exists())

    def resume_state(self) -> tuple[dict[str, Any], str] | None:
        found = self.checkpoints()
        return (load_state(found[-1]), str(found[-1])) if found else None

    def report(self, metrics: dict[str, Any], write_checkpoint: Callable[[Path], None] | None) -> None:
        self.history.append(dict(metrics))
        with open(self._run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if write_checkpoint is None:
            if self._on_epoch is not None:
                self._on_epoch(metrics, None)
            return
        target = self._run_dir / "checkpoints" / f"epoch_{int(metrics['epoch']):04d}"
        replace_dir(target, write_checkpoint)
        if metrics.get("is_best"):  # the epoch's files again, hard-linked: no second copy on disk where links work
            replace_dir(self._run_dir / "best", lambda tmp: shutil.copytree(target, tmp, copy_function=link_or_copy))
        if self._on_epoch is not None:
            self._on_epoch(metrics, target)
        for old in self.checkpoints()[:-self._keep]:
            shutil.rmtree(old, ignore_errors=True)
