"""The Ray Data training pipeline: one dataset per Train worker, executed ONCE for the whole fit.

    ray.data.from_blocks([(epoch, slot) blocks])        the rank's batch slots of every remaining epoch, in order:
                                                        e = start .. epochs-1, s = rank, rank + W, rank + 2W, ...;
                                                        blocks of 1, 2, 4, then up to 8 rows, then 4, 2, 1
                                                        (`task_sizes`)
      .map_batches(_DecodeBatches, batch_size=None,     a pool of decoding actors that lives for the whole fit;
                   compute=ActorPoolStrategy(...))      one task per block: it yields one row per (epoch, slot),
                                                        each holding the whole P x K batch (frames, ...),
                                                        all rows of a task as one n-row batch (one Arrow chunk)
      -> RankStream.epoch(e)                            the Train worker reads the rows of epoch e, in order

Decisions:
- One row = one whole batch (tensors [B, ...] inside a single row), read with `batch_size=1` and squeezed. Identity
  balance survives streaming; a block can never be sliced through a batch; "pairs" batches can carry `pair_same` [N]
  beside [2N] tensors.
- Decoding actors live for the whole fit: each Train worker builds its dataset when it asks for its first epoch
  (after it restored any checkpoint, so it knows where it resumes) and iterates ONE execution of it through all its
  remaining epochs. Start-up (actor creation, manifest read) is paid once per fit, not per epoch, and the next
  epoch's first batches are decoded while the worker validates and checkpoints.
- The epoch and slot of every batch travel inside the data: row (e, s) is `global_plan(records, data, seed,
  batching, e)[s]`, a pure function of (seed, epoch, slot), and the source rows of rank r are slots r::W. So which
  rank gets which batch, and in which order (`preserve_order`), is a pure function of (seed, epoch, rank): a resumed
  run from epoch e gets exactly epoch e's batches, and the in-process iterator (`batching.iter_local_batches`) yields
  the same ones. The data layer takes the config's `data` section and the seed, never the whole experiment config;
  the decoding actors get `data.model_dump()` and the seed.
- Several batches per task (`batches_per_task`: up to 8, fewer when the fit is short, so that every actor of the
  pool gets at least 4 tasks): Ray Data's cost per task (its dispatch, the bookkeeping in the actor and the driver,
  moving its output) is about 8 ms between two tasks of an actor, a quarter of a 256x128 JPEG batch's decode; paid
  once per 8 batches it no longer leaves the actors idle (docs/performance-log.md). A task's output leaves
  the actor when the task ends, so each actor's first tasks are small (1, 2, 4 batches: `task_sizes`) and the
  first batch of the fit is one batch's decode away, not eight; its last tasks are small too, so that the fit
  does not end with one actor decoding a long task while the others idle. The actor decodes a task's batches
  into the rows of one array and yields them as ONE n-row batch, so that its block is one Arrow chunk that the
  reader slices in place, row by row, in the object store: n batches yielded one by one became n chunks, which
  Ray Data's batcher combined (a copy of the whole block, a quarter of a core in the reader) before slicing.
  Yielding each batch as its own block instead was no faster: Ray Data's streaming-generator back-pressure
  (2 blocks) then stalls the actor inside a task unless a private setting is raised.
- Ray Data's own cluster-wide actors (its stats actor and autoscaling coordinator) are started by the driver while
  the Train workers start (`start_ray_data_actors`), so that the first stream of a fresh cluster does not wait for
  them, nor run throttled until the new coordinator first answers.
- Each rank has its own pool of `data.decode_workers` actors (decoding CPUs scale with the Train workers, as GPUs
  need them), owned by the Train worker process: a worker that dies takes its actors along, and its restart builds
  a fresh pool.
- Unreadable tracklets are replaced inside the batch (batching.py), reported to the run's `UnreadableLedger` (a named
  actor the driver creates), shared between actors, and turn into a ReidError past `data.max_errored_fraction`.
  Video decodes run in the actor's own process (frames are copied once, from the decoder into the batch), under a
  watchdog that records a hanging tracklet in the ledger and ends the actor; Ray restarts it and retries the task,
  and the new actor skips that tracklet (decode.py).

This is the only module of the data package that imports Ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import ray

from reid import node_paths
from reid.config.schema import DataConfig
from reid.data.batching import BatchMaker, check_jpeg_decode
from reid.data.decode import Decoder
from reid.data.plan import Batching, PlanRow, global_plan
from reid.data.records import read_manifest
from reid.errors import ReidError
from reid.ray_runtime import quiet_teardown

if TYPE_CHECKING:  # the decoding actors import this module; they never need torch
    import torch

log = logging.getLogger(__name__)
_HANG_REPORT_TIMEOUT_S = 30.0
_POOL_START_TIMEOUT_S = 600
# Tasks queued on each decoding actor. Ray Data's default (2 = 2 x max_concurrency) left the actors idle 37 % of
# the time on `reid bench data` (JPEG store, 2 actors, 2-core machine, 2026-12-05, one batch per task then): after a
# task the actor waits for the driver's scheduling loop to notice it and send the next. 4 keeps one task decoding
# while the driver catches up (docs/performance-log.md); it only queues row ids, the outputs are
# backpressured as before. 8 since 2026-12-07: the stream is handed over in order, so an actor whose finished task
# waits behind the other's earlier one went idle with 4 queued; with 8 the 2-actor JPEG fits of `reid bench data`
# left 0.10-0.15 of the 2 cores idle instead of 0.37-0.54 and delivered 1.27x the clips (medians of 3 alternated
# rounds; docs/performance-log.md, "The data path again, 2026-12-07 evening").
_TASKS_IN_FLIGHT_PER_ACTOR = 8
# At most this many batches per decoding task (module docstring, `batches_per_task`)
_MAX_BATCHES_PER_TASK = 8
_MIN_TASKS_PER_ACTOR = 4


@ray.remote(num_cpus=0)
class UnreadableLedger:
    """A run's unreadable training tracklets (record index -> message), how often decoding actors started, and the
    CPU-seconds they had used when ready (their imports and set-up: `reid bench data` leaves it out of the CPU a
    clip costs)."""

    def __init__(self) -> None:
        quiet_teardown()  # stopped with SIGTERM with its fit: no traceback of a __del__ it lands in
        self._bad: dict[int, str] = {}
        self._starts = 0
        self._ready_cpu = 0.0

    def add_bad(self, items: list[tuple[int, str]]) -> dict[int, str]:
        """Record `items`; returns everything known so far (the caller merges it and checks the threshold)."""
        for index, message in items:
            self._bad.setdefault(int(index), message)
        return dict(self._bad)

    def bad_records(self) -> dict[int, str]:
        return dict(self._bad)

    def decoder_started(self) -> dict[int, str]:
        """Called by every decoding actor's constructor; returns the unreadable tracklets known so far."""
        self._starts += 1
        return dict(self._bad)

    def decoder_starts(self) -> int:
        return self._starts

    def decoder_ready(self, cpu_s: float) -> None:
        """Called by every decoding actor at the end of its constructor with its process's CPU-seconds so far."""
        self._ready_cpu += float(cpu_s)

    def decoder_ready_cpu(self) -> float:
        """The decoding actors' CPU-seconds up to their readiness, summed over every actor started."""
        return self._ready_cpu


def start_ray_data_actors() -> list[ray.actor.ActorHandle]:
    """Start Ray Data's two cluster-wide helper actors now, without waiting for them: its stats actor and its
    autoscaling coordinator (detached, named, one per cluster; a later call, or Ray Data's own, finds them).

    Ray Data creates them lazily, in the first execution on a cluster: there, in a Train worker's first stream,
    the pool's start-up waited for them, and the executor's resource limits stayed zero (no task submitted once
    the first output's size is known) until the coordinator's first answer. The driver calls this before it starts
    the Train workers, so that they are up by the time a worker opens its stream. Measured (`reid bench data`'s
    fit, 2 actors, JPEG store, 2-core machine, 2026-12-06, 3 fresh processes each): the first fit of a cluster
    started in 5.7-6.4 s and ran at 553-583 clips/s; after this call (and the actors up), 4.7 s and 759-886, as
    fast as a second fit. Returns their handles; none where Ray Data has not these internals or could not start
    them here (a head start, never a new way for a fit to fail: Ray Data then creates them itself, as before)."""
    try:
        from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator
        from ray.data._internal.stats import get_or_create_stats_actor

        return [get_or_create_stats_actor(), get_or_create_autoscaling_coordinator()]
    except Exception as exc:  # noqa: BLE001 - optional: the first stream starts them otherwise
        log.debug("Ray Data's cluster actors not started ahead (%s: %s); the first stream starts them",
                  type(exc).__name__, exc)
        return []


def get_or_create_ledger(name: str, namespace: str | None = None,
                         node_id: str | None = None) -> ray.actor.ActorHandle:
    """The run's ledger actor named `name` (created on first use; the driver creates it before training).

    `node_id` pins a new ledger to that node (the driver's, so that losing a worker node does not take it along).
    """
    options: dict[str, Any] = {"name": name, "namespace": namespace, "get_if_exists": True}
    if node_id is not None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return UnreadableLedger.options(**options).remote()


class _DecodeBatches:
    """Decoding actor: turns (epoch, slot) rows into whole batches of that epoch's plan."""

    def __init__(self, manifest_path: str, data: dict[str, Any], seed: int, inputs: list[str], batching: Batching,
                 world_size: int, ledger_name: str, ledger_namespace: str | None) -> None:
        # the SIGTERM that ends this process when a fit stops may land in decord's VideoReader.__del__: without this,
        # Python printed its SystemExit there as a traceback on the driver's console (CI, 2026-12-07)
        quiet_teardown()
        self.ledger = ray.get_actor(ledger_name, namespace=ledger_namespace)
        known_bad = ray.get(self.ledger.decoder_started.remote())
        self.data, self.seed = DataConfig.model_validate(data), seed
        self.manifest = read_manifest(manifest_path)
        if not self.manifest.remote:  # an autoscaler's node without the dataset: say so, not N unreadable tracklets
            node_paths.check_here({"data.root": str(self.manifest.root)}, "a decoding actor")
        self.batching, self.world_size = batching, world_size
        self._plans: dict[int, list[PlanRow]] = {}
        timeout = self.data.decode_timeout_s
        decoder = Decoder(timeout, on_hang=self._record_hang) if timeout else Decoder(None)
        self.maker = BatchMaker(self.manifest, self.data, inputs, train=True, decoder=decoder,
                                known_bad=known_bad)
        self.spare = SpareFrames()
        ray.get(self.ledger.decoder_ready.remote(time.process_time()))  # all threads' CPU, as /proc counts it

    def _record_hang(self, index: int, message: str) -> None:
        """Watchdog callback, just before this process ends: the restarted actor must skip the tracklet."""
        if index >= 0:
            ray.get(self.ledger.add_bad.remote([(index, message)]), timeout=_HANG_REPORT_TIMEOUT_S)

    def _row(self, epoch: int, slot: int) -> PlanRow:
        if epoch not in self._plans:
            if len(self._plans) >= 2:  # rows arrive in epoch order; keep the current and the next epoch
                del self._plans[min(self._plans)]
            self._plans[epoch] = global_plan(self.manifest.records, self.data, self.seed, self.batching, epoch,
                                             self.world_size)
        return self._plans[epoch][slot]

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Rows (epoch, slot) [n] -> the n batches of the plan as ONE batch dict with a leading row axis of n.

        Each batch's frames are decoded straight into its row of one [n, B, T, H, W, 3] (`frames_hwc`; or
        [n, B, T, 3, H, W]) array, so that the task's output block holds them in one Arrow chunk, which the reader
        slices row by row without a copy. Yielded one by one, the n batches made a block of n chunks, and Ray
        Data's batcher combined them (a copy of the whole block) before slicing off the first row: 0.36 of a core
        in the reading process, about 14 ms per 12.6 MB batch (2026-12-05, docs/performance-log.md). Batches of JPEG bytes
        (ragged) are still yielded one by one."""
        rows = [self._row(int(epoch), int(slot)) for epoch, slot in zip(batch["epoch"], batch["slot"], strict=True)]
        shape = self.maker.frames_shape(len(rows[0].indices))
        if shape is None or any(len(r.indices) != shape[0] for r in rows):  # JPEG bytes, ragged: one at a time
            for row in rows:
                yield {k: v[None] for k, v in self._make(row, None).items()}  # a leading row axis as a view
            return
        task = ray.get_runtime_context().get_task_id() or ""
        base, frames = self.spare.take(task, len(rows), shape)
        made = [self._make(row, frames[i]) for i, row in enumerate(rows)]
        key = self.maker.frames_key  # "frames", or "frames_hwc" (batching.py, batch contract)
        for i, m in enumerate(made):
            if not np.may_share_memory(m[key], frames[i]):  # the maker had to assemble it elsewhere
                frames[i] = m[key]
        yield {k: frames if k == key else np.stack([m[k] for m in made]) for k in made[0]}
        self.spare.give(task, base)

    def _make(self, row: PlanRow, frames_out: np.ndarray | None) -> dict[str, np.ndarray]:
        errors = self.maker.errors
        try:
            return self.maker(row, frames_out=frames_out)
        finally:
            if errors.fresh:  # report even when the threshold error is on its way up
                fresh = list(errors.fresh)
                errors.fresh.clear()
                errors.merge(ray.get(self.ledger.add_bad.remote(fresh)))

    def __del__(self) -> None:
        maker = getattr(self, "maker", None)
        if maker is not None:
            maker.close()


class SpareFrames:
    """The frames array of a decoding actor's last finished task, for its next task to decode into.

    A task's output block wraps its frames array without a copy, and Ray copies the block into the object store
    before the actor runs its next task. A fresh array for every task cost page faults: the kernel zero-fills each
    4 KiB page on first touch, 12.6 MB a batch at 256x128, T=8, P x K = 16 (reusing it: about 6 % less
    decoding-actor CPU per clip, 2026-12-05, docs/performance-log.md). The array is only handed to a task OTHER than the
    one that gave it back: two calls within one task (Ray Data may give a task several input blocks) could
    otherwise overwrite a batch still waiting in that task's output buffer.
    """

    def __init__(self) -> None:
        self._spare: tuple[str, np.ndarray] | None = None

    def take(self, task: str, rows: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(base, frames): uint8 frames [rows, *shape] to decode into, and the array that holds them (for `give`).
        The spare array when another task gave it back and it has that shape with at least `rows` rows, else new."""
        spare, self._spare = self._spare, None
        if spare is not None and spare[0] != task and spare[1].shape[1:] == shape and len(spare[1]) >= rows:
            return spare[1], spare[1][:rows]
        base = np.empty((rows, *shape), dtype=np.uint8)
        return base, base

    def give(self, task: str, base: np.ndarray | None) -> None:
        """Task `task` has yielded the frames it took from `base`: keep `base` (the larger, if one is kept)."""
        if base is not None and (self._spare is None or len(self._spare[1]) <= len(base)):
            self._spare = (task, base)


DECODING_ACTOR = _DecodeBatches.__name__  # in the decoding actors' process titles: ray::MapWorker(MapBatches(...))


def batches_per_epoch(manifest_path: str | Path, data: DataConfig, seed: int, batching: Batching,
                      world_size: int) -> int:
    """Global batches per epoch (a multiple of `world_size`; the same in every epoch)."""
    return len(global_plan(read_manifest(manifest_path).records, data, seed, batching, 0, world_size))


def build_rank_dataset(manifest_path: str | Path, data: DataConfig, seed: int, spec_inputs: Iterable[str],
                       batching: Batching, *, rank: int, world_size: int, epochs: range, ledger_name: str,
                       ledger_namespace: str | None = None, num_batches: int | None = None) -> ray.data.Dataset:
    """Rank `rank`'s batches of `epochs`, in order: rows (epoch, slot) for slot = rank, rank + W, ..., from the
    plans of `data` (the config's `data` section) and `seed`.

    Needs the ledger actor `ledger_name` to exist (`get_or_create_ledger`). Columns follow the batch contract of
    batching.py with a leading row axis of 1 per row (`data.jpeg_decode=trainer`: JPEG bytes in place of `frames`,
    decoded by the Train worker; refused here for a manifest that is not a JPEG store or CPU-derived inputs).
    """
    if not 0 <= rank < world_size:
        raise ReidError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    # here, not in the actors' constructors: a clear error before the pool starts, not an actor failure mid-run
    check_jpeg_decode(data, spec_inputs, read_manifest(manifest_path) if data.jpeg_decode == "trainer" else None)
    if num_batches is None:  # reads and validates the manifest
        num_batches = batches_per_epoch(manifest_path, data, seed, batching, world_size)
    rows = np.array([(e, s) for e in epochs for s in range(rank, num_batches, world_size)], dtype=np.int64)
    if not len(rows):
        raise ReidError(f"no batches to produce for epochs {epochs.start}..{epochs.stop - 1}")
    d = data
    # from_blocks takes blocks built in this process, and keeps them as they are (one block per task): no read task
    # and no metadata task (from_arrow runs one per block), whose default 1-CPU request would deadlock on a small
    # node where the Train workers and decoding actors already hold fractional CPUs.
    bounds = np.cumsum([0, *task_sizes(len(rows), d.decode_workers)])
    ds = ray.data.from_blocks([pa.table({"epoch": rows[a:b, 0], "slot": rows[a:b, 1]})
                              for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    ds = ds.map_batches(
        _DecodeBatches,
        fn_constructor_kwargs={"manifest_path": _absolute(manifest_path), "data": data.model_dump(), "seed": seed,
                               "inputs": sorted(set(spec_inputs) | {"frames"}), "batching": batching,
                               "world_size": world_size, "ledger_name": ledger_name,
                               "ledger_namespace": ledger_namespace},
        batch_size=None,  # one task per source block
        compute=ray.data.ActorPoolStrategy(size=d.decode_workers,
                                          max_tasks_in_flight_per_actor=_TASKS_IN_FLIGHT_PER_ACTOR),
        num_cpus=d.decode_cpus,
        zero_copy_batch=True,
    )
    ds.context.execution_options.preserve_order = True  # the order of the source rows is the training order
    # the whole pool is up before the first batch (one start-up, then full speed); a cluster that cannot place it
    # fails with Ray's "Timed out while starting actors ... not enough resources" instead of waiting forever
    ds.context.wait_for_min_actors_s = _POOL_START_TIMEOUT_S
    ds.context.enable_progress_bars = False  # one long execution per fit; the epoch lines report progress
    return ds


def batches_per_task(batches: int, actors: int) -> int:
    """Batches each decoding task makes, for a stream of `batches` batches and a pool of `actors`: as many as
    _MAX_BATCHES_PER_TASK while every actor still gets _MIN_TASKS_PER_ACTOR tasks, at least 1."""
    return max(1, min(_MAX_BATCHES_PER_TASK, batches // (_MIN_TASKS_PER_ACTOR * max(1, actors))))


def task_sizes(batches: int, actors: int) -> list[int]:
    """Batches per decoding task, in stream order, for a stream of `batches` batches and a pool of `actors`; sums to
    `batches`. Long tasks (`batches_per_task(batches, actors)`) in the middle; at both ends each actor gets tasks of
    1, 2, 4, ... batches: the first batch of the fit is one batch's decode away, and no actor is left decoding a
    long last task alone while the others idle."""
    cap, n = batches_per_task(batches, actors), max(1, actors)
    ramp = [size for size in (1 << i for i in range(cap.bit_length())) if size < cap for _ in range(n)]
    if 2 * sum(ramp) > batches:  # a short stream: one batch per task
        return [1] * batches
    middle = batches - 2 * sum(ramp)
    return ramp + [cap] * (middle // cap) + ([middle % cap] if middle % cap else []) + ramp[::-1]


def _absolute(location: str | Path) -> str:
    """The manifest as every actor can name it: an absolute local path (actors do not share this working
    directory), or the URI as it is."""
    return str(location) if "://" in str(location) else str(Path(location).resolve())


class RankStream:
    """One Train worker's batches, epoch after epoch, from ONE execution of its dataset (`build_rank_dataset`).

    `epoch(e)` must be called for consecutive epochs starting at `epochs.start`; it yields exactly the rank's
    `per_epoch` batches of epoch e and checks each batch's (epoch, slot) against the plan.
    """

    def __init__(self, dataset: ray.data.Dataset, epochs: range, per_epoch: int, rank: int, world_size: int, *,
                 prefetch_batches: int = 2, device: str = "auto") -> None:
        self.per_epoch, self.rank, self.world_size = per_epoch, rank, world_size
        self._next = epochs.start
        # device "auto": Ray moves each batch to the Train worker's device; "cpu" keeps it in host memory (JPEG
        # bytes, which the decoder reads from there: data.jpeg_decode=trainer)
        self._rows = iter(dataset.iter_torch_batches(batch_size=1, prefetch_batches=prefetch_batches, device=device))

    @property
    def next_epoch(self) -> int:
        return self._next

    def epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        if epoch != self._next:
            raise ReidError(f"the data stream is at epoch {self._next}, epoch {epoch} was requested")
        self._next = epoch + 1
        for i in range(self.per_epoch):
            try:
                batch = next(self._rows)
            except StopIteration:
                raise ReidError(f"the data stream ended in epoch {epoch} after {i} of {self.per_epoch} batches"
                                ) from None
            out = {k: v[0] for k, v in batch.items()}
            got, slot = int(out["epoch"]), int(out["batch_index"])
            want = self.rank + i * self.world_size
            if (got, slot) != (epoch, want):
                raise ReidError(f"the data pipeline produced batch {slot} of epoch {got} where batch {want} of epoch "
                                f"{epoch} was due (rank {self.rank} of {self.world_size})")
            yield out


def open_rank_stream(manifest_path: str | Path, data: DataConfig, seed: int, spec_inputs: Iterable[str],
                     batching: Batching, *, rank: int, world_size: int, start_epoch: int, end_epoch: int,
                     ledger_name: str, ledger_namespace: str | None = None, prefetch_batches: int = 2) -> RankStream:
    """A RankStream over epochs `start_epoch` .. `end_epoch - 1` (what a Train worker iterates in a fit:
    `end_epoch` = `train.epochs`)."""
    epochs = range(start_epoch, end_epoch)
    num_batches = batches_per_epoch(manifest_path, data, seed, batching, world_size)
    ds = build_rank_dataset(manifest_path, data, seed, spec_inputs, batching, rank=rank, world_size=world_size,
                            epochs=epochs, ledger_name=ledger_name, ledger_namespace=ledger_namespace,
                            num_batches=num_batches)
    per_epoch = num_batches // world_size
    device = "cpu" if data.jpeg_decode == "trainer" else "auto"
    return RankStream(ds, epochs, per_epoch, rank, world_size, prefetch_batches=prefetch_batches, device=device)


def unreadable_tracklets(ledger: ray.actor.ActorHandle) -> dict[int, str]:
    """Record index -> message of every tracklet the decoding actors had to skip so far."""
    return ray.get(ledger.bad_records.remote())
