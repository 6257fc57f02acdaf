"""The Ray Train side of a Session: each worker's own data stream (`reid.data.pipeline`), checkpoints via
`ray.train.report`.

The stream starts before the model is built (`start_data`): a thread asks for the first batch, which starts the
decoding actors (process start, imports, manifest read: seconds) while this worker imports, builds and wraps its
model (on a GPU also CUDA and NCCL initialisation). The first epoch then waits only for what is left of it.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from reid.training.checkpoint import load_state
from reid.training.ddp_warnings import drop_benign_stride_warnings
from reid.training.session import Session


def quiet_model_logs(rank: int) -> None:
    """Every rank builds the same model from the same config, so what `reid.models` logs while building it (which
    ImageNet weights were loaded or are missing, an `--init-from`) is the same on each: rank 0 says it, the others
    keep their warnings to errors. Otherwise the driver shows rank 1's copy last of all: Ray holds a line repeated
    by another worker back for its deduplication and prints it when the command ends (a `reid demo` printed the
    missing-weights warning after `finished in 174 s`, 2026-12-06)."""
    logging.getLogger("reid.models").setLevel(logging.NOTSET if rank == 0 else logging.ERROR)


def quiet_train_reports() -> None:
    """Called by each Ray Train worker as it starts (`RaySession`). Ray Train 2.60 logs "Reporting
    training result N: TrainingReport(...)" (every epoch, every rank) through `logging.getLogger(__file__)` in
    ray/train/v2/_internal/execution/context.py: a logger named by a file path, outside `ray.train`, so Train's own
    log-level setting never reaches it and the worker's root logger prints it. Its content is in the run's
    metrics.jsonl.

    Not a job-wide `worker_process_setup_hook`, which it was until 2026-12-06: a job runtime environment that names
    a hook sends every worker process of the job through it, and a fit's decoding actors started about 1.1 s later
    (`reid bench data`'s fit, JPEG store, 2 actors, 2-core machine: first batch 3.1 -> 2.0 s after the stream
    opened, 5 fits in each of 2 processes either way; docs/performance-log.md)."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray version: nothing to quiet
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


class RaySession(Session):
    """`data` holds what the worker's data stream needs: "manifest" (path), "data" (the config's DataConfig),
    "seed", "epochs" (train.epochs), the method's "inputs" and "batching", "ledger" (the name of the run's
    UnreadableLedger actor) and "resume_from" (a checkpoint path when Ray's index of the run was unreadable)."""

    def __init__(self, data: dict[str, Any], run_dir: Path | None = None) -> None:
        quiet_train_reports()
        drop_benign_stride_warnings()  # DDP's "Grad strides do not match" where only size-1 dimensions differ
        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        quiet_model_logs(self.rank)
        self.world_size = ctx.get_world_size()
        self.local_world_size = ctx.get_local_world_size()
        self.device = ray.train.torch.get_device()
        self._data = data
        self._stream = None
        self._head_start: HeadStart | None = None
        self._storage = Path(ctx.get_storage().storage_fs_path) if hasattr(ctx, "get_storage") else None
        # Ray's own index, else the newest whole checkpoint of a run whose index a full disk cut short (snapshot.py)
        self._checkpoint = ray.train.get_checkpoint() or (
            ray.train.Checkpoint(data["resume_from"]) if data.get("resume_from") else None)
        self._run_dir = run_dir

    def console(self) -> TextIO:
        """The process's own stdout: Ray Train patches `print` to log to its logger and, because Ray wraps
        `sys.stdout` in workers, to print as well, so a plain `print` shows every line twice on the driver."""
        return sys.__stdout__ or sys.stdout

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        # DDP over NCCL (GPU) or Gloo (CPU) when there is more than one worker; moves the model to the device.
        return ray.train.torch.prepare_model(model)

    def start_data(self, epoch: int) -> None:
        """Open the stream at `epoch` (after a resume: the checkpoint's) and fetch its first batch in a thread."""
        self._open(epoch)
        self._head_start = HeadStart(self._stream.epoch(epoch), epoch)

    def epoch_batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        """One stream per fit, opened by `start_data` or at the first epoch this worker trains."""
        head, self._head_start = self._head_start, None
        if head is not None and head.epoch == epoch:
            return iter(head)
        self._open(epoch)
        return self._stream.epoch(epoch)

    def _open(self, epoch: int) -> None:
        from reid.data.pipeline import open_rank_stream

        if self._stream is None or self._stream.next_epoch != epoch:
            d = self._data
            self._stream = open_rank_stream(d["manifest"], d["data"], d["seed"], d["inputs"], d["batching"],
                                            rank=self.rank, world_size=self.world_size, start_epoch=epoch,
                                            end_epoch=d["epochs"], ledger_name=d["ledger"])

    def resume_state(self) -> tuple[dict[str, Any], str] | None:
        """The checkpoint Ray Train hands this worker, copied (or downloaded) into a temporary folder that is gone
        once the state is in memory. Ray ends a worker process without running its finalizers (`ray.kill` at the
        end of a fit), so a folder kept for the worker's lifetime stayed behind in /tmp: a copy of the checkpoint
        (129 MB for the tests' ResNet-18 runs) per resumed worker, an empty folder per other one."""
        if self._checkpoint is None:
            return None
        with tempfile.TemporaryDirectory(prefix="reid-resume-state-") as tmp:
            state = load_state(self._checkpoint.to_directory(str(Path(tmp) / "resume")))
        return state, self._checkpoint.path

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


class HeadStart:
    """The batches of one epoch whose first batch is fetched in a background thread as soon as this is built.

    Iterating waits for that fetch, re-raises its error in the caller's thread (a decoding failure, a pool that
    cannot start), then yields the first batch and the rest of the epoch. The thread only ever calls `next` once,
    and the caller resumes the same iterator after joining it, so the two never run it at the same time."""

    def __init__(self, batches: Iterator[dict[str, Any]], epoch: int) -> None:
        self.epoch = epoch
        self._batches = batches
        self._first: list[dict[str, Any]] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._fetch, name=f"reid-first-batch-{epoch}", daemon=True)
        self._thread.start()

    def _fetch(self) -> None:
        try:
            self._first.append(next(self._batches))
        except StopIteration:  # an epoch without batches
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread, which raises it
            self._error = exc

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        yield from self._first
        yield from self._batches
