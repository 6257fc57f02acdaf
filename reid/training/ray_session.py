"""The Ray Train side of a Session: each worker's own data stream (`reid.data.pipeline`), checkpoints via
`ray.train.report`."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from reid.training.session import Session


class RaySession(Session):
    """`data` holds what the worker's data stream needs: "manifest" (path), "data" (the config's DataConfig),
    "seed", "epochs" (train.epochs), the method's "inputs" and "batching", and "ledger" (the name of the run's
    UnreadableLedger actor)."""

    def __init__(self, data: dict[str, Any], run_dir: Path | None = None) -> None:
        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self._data = data
        self._stream = None
        self._storage = Path(ctx.get_storage().storage_fs_path) if hasattr(ctx, "get_storage") else None
        self._checkpoint = ray.train.get_checkpoint()
        self._tmp = tempfile.TemporaryDirectory(prefix="reid-ckpt-")
        self._run_dir = run_dir

    def console(self) -> TextIO:
        """The process's own stdout: Ray Train patches `print` to log to its logger and, because Ray wraps
        `sys.stdout` in workers, to print as well, so a plain `print` shows every line twice on the driver."""
        return sys.__stdout__ or sys.stdout

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        # DDP over NCCL (GPU) or Gloo (CPU) when there is more than one worker; moves the model to the device.
        return ray.train.torch.prepare_model(model)

    def epoch_batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        """Opened at the first epoch this worker trains (after a resume: the checkpoint's), one stream per fit."""
        from reid.data.pipeline import open_rank_stream

        if self._stream is None or self._stream.next_epoch != epoch:
            d = self._data
            self._stream = open_rank_stream(d["manifest"], d["data"], d["seed"], d["inputs"], d["batching"],
                                            rank=self.rank, world_size=self.world_size, start_epoch=epoch,
                                            end_epoch=d["epochs"], ledger_name=d["ledger"])
        return self._stream.epoch(epoch)

    def resume_state_dir(self) -> Path | None:
        if self._checkpoint is None:
            return None
        return Path(self._checkpoint.to_directory(str(Path(self._tmp.name) / "resume")))

    def report(self, metrics: dict[str, Any], write_checkpoint: Callable[[Path], None] | None) -> None:
        if self.rank == 0 and self._run_dir is not None:
            # every epoch's metrics (Ray's result keeps only those of retained checkpoints)
            self._run_dir.mkdir(parents=True, exist_ok=True)
            with open(self._run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
        if write_checkpoint is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="reid-report-") as tmp:
            checkpoint = None
            if self.rank == 0:
                write_checkpoint(Path(tmp))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)  # a barrier: every rank calls it every epoch

    def all_gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1 or not dist.is_initialized():
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out
