"""The Ray Data training pipeline: batch slots -> decoding actors -> one whole batch per row -> Train shards.

    ray.data.from_items(slots)                       one source row per batch slot 0 .. num_batches - 1
      .map_batches(_DecodeBatches, batch_size=1,     a pool of decoding actors; each call turns ONE slot into ONE
                   compute=ActorPoolStrategy(...))   row holding the whole P x K batch ([B, T, 3, H, W], ...)
      -> TorchTrainer(datasets={"train": ds})        Train splits it with streaming_split(world_size, equal=True)
      -> iter_epoch(get_dataset_shard("train"), clock, epoch)

Decisions:
- One row = one whole batch (tensors [B, ...] inside a single row), read with `batch_size=1` and squeezed. Identity
  balance survives streaming and splitting; a block can never be sliced through a batch (Ray only splits blocks
  between rows, and blocks over `target_max_block_size` get split); and "pairs" batches can carry `pair_same` [N]
  beside [2N] tensors. num_batches is a multiple of the world size, so the equal split never cuts a row.
- Which epoch a row belongs to: each Train epoch re-executes the dataset, and Ray's reseed-per-execution counts
  executions, which restart from zero after a process restart, so it cannot resume the data order. A named actor
  `EpochClock` holds the epoch instead. Every worker calls `clock.set(epoch)` before iterating (`iter_epoch`); the
  streaming-split coordinator starts an epoch's execution only once ALL workers asked for it, and every execution
  creates fresh decoding actors, which read the epoch in their constructor; each row then is
  `global_plan(records, cfg, epoch)[slot]`, a pure function of (seed, epoch, slot). A resumed run calls
  `iter_epoch(..., epoch=restored_epoch)` and gets exactly that epoch's batches. Each batch carries its epoch;
  `iter_epoch` fails loudly on a mismatch.
- Which rank gets which batch is decided by Ray's split at run time (the content of every batch is fixed).
- Unreadable tracklets are replaced inside the batch (batching.py), reported to the clock, remembered across epochs,
  and turn into a ReidError past `data.max_errored_fraction`; decodes are time-bounded (decode.py).

This is the only module of the data package that imports Ray.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import ray

from reid.config.schema import ExperimentConfig
from reid.data.batching import BatchMaker
from reid.data.plan import Batching, global_plan
from reid.data.records import read_manifest
from reid.errors import ReidError

if TYPE_CHECKING:  # the decoding actors import this module; they never need torch
    import torch

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0)
class EpochClock:
    """The current epoch of a run, plus the unreadable tracklets found so far (record index -> message)."""

    def __init__(self) -> None:
        self._epoch = 0
        self._bad: dict[int, str] = {}

    def set(self, epoch: int) -> int:
        self._epoch = int(epoch)
        return self._epoch

    def get(self) -> int:
        return self._epoch

    def add_bad(self, items: list[tuple[int, str]]) -> int:
        for index, message in items:
            self._bad.setdefault(int(index), message)
        return len(self._bad)

    def bad_records(self) -> dict[int, str]:
        return dict(self._bad)


def get_or_create_clock(name: str, namespace: str | None = None, node_id: str | None = None) -> ray.actor.ActorHandle:
    """The run's clock actor named `name` (created on first use; the driver should create it before training).

    `node_id` pins a new clock to that node (the driver's, so that losing a worker node does not take it along).
    """
    options: dict[str, Any] = {"name": name, "namespace": namespace, "get_if_exists": True}
    if node_id is not None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return EpochClock.options(**options).remote()


class _DecodeBatches:
    """Decoding actor: turns a batch slot into the whole batch of the current epoch's plan."""

    def __init__(self, manifest_path: str, cfg: dict[str, Any], inputs: list[str], batching: Batching,
                 world_size: int, clock_name: str, clock_namespace: str | None) -> None:
        self.clock = ray.get_actor(clock_name, namespace=clock_namespace)
        self.epoch, known_bad = ray.get([self.clock.get.remote(), self.clock.bad_records.remote()])
        config = ExperimentConfig.model_validate(cfg)
        manifest = read_manifest(manifest_path)
        self.rows = global_plan(manifest.records, config, batching, self.epoch, world_size)
        self.maker = BatchMaker(manifest, config, inputs, train=True, known_bad=known_bad)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {}
        for slot in batch["id"]:
            try:
                made = self.maker(self.rows[int(slot)])
            finally:
                if self.maker.errors.fresh:  # report even when the threshold error is on its way up
                    self.clock.add_bad.remote(list(self.maker.errors.fresh))
                    self.maker.errors.fresh.clear()
            for k, v in made.items():
                out.setdefault(k, []).append(v)
        return {k: np.stack(v) for k, v in out.items()}

    def __del__(self) -> None:
        maker = getattr(self, "maker", None)
        if maker is not None:
            maker.close()


def build_train_dataset(manifest_path: str | Path, cfg: ExperimentConfig, spec_inputs: Iterable[str],
                        batching: Batching, world_size: int, clock_name: str,
                        clock_namespace: str | None = None) -> ray.data.Dataset:
    """The training dataset: one row per batch, `num_batches` (a multiple of `world_size`) rows per epoch.

    Needs the clock actor `clock_name` to exist (`get_or_create_clock`). Columns follow the batch contract of
    batching.py with a leading row axis of 1 per row.
    """
    manifest = read_manifest(manifest_path)  # validates the manifest on the driver, with a clear error
    num_batches = len(global_plan(manifest.records, cfg, batching, 0, world_size))
    d = cfg.data
    # from_items builds its blocks on the driver: no read task, whose default 1-CPU request would deadlock on a
    # small node where the Train workers and decoding actors already hold fractional CPUs.
    ds = ray.data.from_items([{"id": i} for i in range(num_batches)], override_num_blocks=num_batches)
    return ds.map_batches(
        _DecodeBatches,
        fn_constructor_kwargs={"manifest_path": str(Path(manifest_path).resolve()), "cfg": cfg.model_dump(),
                               "inputs": sorted(set(spec_inputs) | {"frames"}), "batching": batching,
                               "world_size": world_size, "clock_name": clock_name,
                               "clock_namespace": clock_namespace},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=d.decode_workers),
        num_cpus=d.decode_cpus,
        zero_copy_batch=True,
    )


def iter_epoch(shard: Any, clock: ray.actor.ActorHandle, epoch: int, *,
               prefetch_batches: int = 1) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of `epoch` from a Train worker's shard (`ray.train.get_dataset_shard("train")`, or any DataIterator).

    Every worker must call this once per epoch with the same `epoch`; it sets the clock first. Tensors land on the
    worker's device (`iter_torch_batches(device="auto")`); frames stay uint8 until the worker normalises them.
    """
    ray.get(clock.set.remote(epoch))
    for batch in shard.iter_torch_batches(batch_size=1, prefetch_batches=prefetch_batches):
        out = {k: v[0] for k, v in batch.items()}
        got = int(out["epoch"])
        if got != epoch:
            raise ReidError(f"the data pipeline produced a batch of epoch {got} while epoch {epoch} was requested; "
                            f"all Train workers must call iter_epoch with the same epoch")
        yield out


def unreadable_tracklets(clock: ray.actor.ActorHandle) -> dict[int, str]:
    """Record index -> message of every tracklet the decoding actors had to skip so far."""
    return ray.get(clock.bad_records.remote())
