"""What a fit pays for its data: the Ray Data pipeline at fit level, per frame store, against the decode limit and
a torchreid-style DataLoader.

All readers take the SAME tracklets (the same P x K plan rows, T frames per clip by restricted random sampling, the
same output size), in one run, side by side:
  pipeline   reid.data.pipeline as a Train worker uses it: a pool of --workers decoding actors (1 CPU each) that
             lives for the whole fit, --epochs epochs of --batches batches. Reported: start-up (fit start to the
             first batch: actor creation, manifest read), the fit-level rate (clips from the first batch of the fit
             to its last, epoch boundaries included) and the steady state (each epoch after the first, timed from
             the previous epoch's last batch to its own, so that batches arriving together all count; median).
             Also with 1 actor, for the 1 -> N scaling. uint8 out (normalisation happens later, on the device).
  raw decode the same frames of the same store decoded in a tight loop by one fresh process, the way the
             pipeline decodes them (a JPEG store's into a clip-sized array), no transforms: the decode limit per
             core. With --workers N > 1 also N such processes at once: the machine's own 1 -> N scaling of the
             decode, the ceiling of the pipeline's (a shared or memory-bound node gives less than N x).
  baseline   what torchreid does: a torch DataLoader with --workers processes; every frame opened with PIL from its
             own JPEG file and transformed independently (Resize, flip, Pad 10 + RandomCrop, ToTensor, Normalize);
             float32 out. Video datasets are first unpacked to JPEG frames (not timed).
Stores (--stores): `video` (H.264 files, decord; what `reid prepare --pack video` writes) and `jpeg` (JPEG bytes in
Parquet shards, libjpeg-turbo through simplejpeg; `reid prepare --pack jpeg`); the input is converted to each (not
timed) and its bytes per frame reported. Medians over --repeats (this machine is shared and noisy).

CPU split (Linux, decoding actors on this node; reid/bench/cpu_split.py): where the machine's CPUs went from each
fit's first batch to its last (the decoding actors, this process as the consumer, the rest of the machine, idle),
the clips per CPU-second the actors used (over the whole fit, less their CPU up to their readiness: imports and
set-up) against the raw decode's clips per CPU-second of its process, and the part of the actors' CPU spent in the
kernel (`kernel`: mostly page faults as Ray copies each batch into the object store, whose pages a fresh actor
process touches for the first time; docs/performance-log.md). The per-core ratios divide by the number of actors;
where the actors share the cores with the consumer and Ray (no more cores than actors) the CPU ratio separates the
pipeline's cost per clip from that contention, and so does the line `the same with 1 decoding actor` (the 1-actor
fit-level rate against the raw decode). A diagnosis, not a target. --plot PNG draws each store's median fits (N and
1 actors) as clips delivered over time against the raw decode limit, the start-up and the epochs marked
(reid/bench/data_plot.py); --json keeps their batch arrivals.
Targets per decode core: fit-level pipeline >= 0.9 x the raw decode limit of the same store; >= 3 x the
torchreid-style loader; 1 -> 2 decode actors >= 1.8 x. Give each decoding actor at least 4 batches an epoch
(--batches >= 4 x --workers): a shorter epoch is flagged, its rates measure a burst of decodes begun during start-up.
--batches defaults to 32: with 8 (3 epochs, 24 batches) the JPEG store's whole fit took about a second on the 2-core
development machine, inside the tail of the start-up, and the same code gave 215 to 400 clips/s (2026-12-05).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from reid import storage
from reid.bench import cpu_split
from reid.bench.cpu_split import CpuSplit
from reid.bench.data_plot import StoreTimeline, write_plot
from reid.bench.host import host_conditions
from reid.config.schema import ExperimentConfig
from reid.data.plan import PlanRow, pk_plan
from reid.data.records import Manifest, read_manifest, write_manifest
from reid.data.sampling import RestrictedSampler
from reid.errors import ReidError

STORES = ("video", "jpeg")
_LEDGERS: list = []


def bench_ledger(prefix: str) -> tuple[str, Any]:
    """A fresh unreadable-tracklet ledger for one measured stream: (its name, its handle). The handle is kept until
    the next call, which comes after the stream was read to its end: the ledger is a named actor that dies with its
    last handle, and an actor of the decoding pool may still be starting (and looking it up) when the stream's rows
    are done. Not longer: an idle actor process costs about 1 % of a core; kept to the end, the 6 ledgers of 6 fits
    in one process took 0.50 CPU-s during the 6th fit's 6.2 s (2-core machine, 2026-12-05), and a default
    `reid bench data` run makes 12.

    Returned once the ledger is up, as in a fit: `reid train`'s driver creates it before it starts the Train workers,
    whose streams open seconds later. Not waiting put its process start into the measured start-up, beside the
    decoding actors' (Ray starts at most as many worker processes at once as the node has CPUs): the first batch
    came a median 2.08 s after the stream opened against 1.66 s (JPEG store, 2 actors, 2-core machine, 2026-12-06,
    8 fits each way in 4 alternated processes)."""
    import uuid

    import ray

    from reid.data.pipeline import get_or_create_ledger

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    ledger = get_or_create_ledger(name)
    _LEDGERS[:] = [ledger]  # the previous stream's ledger goes with its last handle
    ray.get(ledger.__ray_ready__.remote())
    return name, ledger


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", help="manifest.parquet to read (default: the synthetic 'tiny' set at --size)")
    p.add_argument("--root", help="dataset root holding manifest.parquet (alternative to --manifest)")
    p.add_argument("--stores", default="video,jpeg", help="frame stores to compare: video, jpeg (comma-separated)")
    p.add_argument("--seq-len", type=int, default=8, help="T, frames per clip")
    p.add_argument("--size", default="256x128", help="output frame size HxW")
    p.add_argument("--batches", type=int, default=32, help="P x K batches per epoch (>= 2; >= 4 x --workers)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per pipeline fit")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is shown)")
    p.add_argument("--workers", type=int, default=2, help="decoding actors = DataLoader worker processes")
    p.add_argument("--ids-per-batch", type=int, default=4, help="P")
    p.add_argument("--tracklets-per-id", type=int, default=4, help="K")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch plans and the frames sampled (default 0)")
    p.add_argument("--json", help="also write the numbers (and each store's batch arrivals) to this JSON file")
    p.add_argument("--plot", help="also write a PNG of the clips delivered over each store's median fit, with N and "
                                  "1 decoding actors, against the raw decode limit (start-up and epochs marked)")


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ReidError(f"--size must look like 256x128 (height x width), got '{text}'") from None
    return h, w


def _dataset(args: argparse.Namespace, tmp: Path) -> Path:
    if args.manifest or args.root:  # its stores are packed from local frames
        given = storage.local_only(args.manifest or args.root, "--manifest" if args.manifest else "--root",
                                   "bench data", writes=False)
        return given if args.manifest else given / "manifest.parquet"
    from reid.data.synth import generate

    h, w = _size(args.size)  # frames stored at the output size, as prepared MARS frames are (256x128)
    return generate(tmp / "synthetic", preset="tiny", seed=0, height=h, width=w)


def store_copy(m: Manifest, store: str, tmp: Path) -> Manifest:
    """The same tracklets in `store` (converted once, not timed); a manifest already in that store is used as is."""
    if store == "jpeg":
        if all(r.shard for r in m.records):
            return m
        from reid.data.jpeg_pack import pack_jpeg

        packed = pack_jpeg(m, tmp / "jpeg-store", progress=False)
        write_manifest(packed)
        return packed
    if store == "video":
        if all(r.video for r in m.records):
            return m
        raise ReidError("the video store needs a manifest of videos (`reid prepare ... --pack video`); "
                        "drop 'video' from --stores")
    raise ReidError(f"unknown store '{store}'; expected one of {', '.join(STORES)}")


def bytes_per_frame(m: Manifest) -> float:
    files = {m.resolve(r.video or r.shard) for r in m.records if r.video or r.shard}
    files |= {m.resolve(f) for r in m.records for f in r.frames}
    return sum(p.stat().st_size for p in files) / max(1, sum(r.num_frames for r in m.records))


def frames_manifest(m: Manifest, out: Path) -> Manifest:
    """The same records with one JPEG file per frame (the torchreid layout); frame records are kept."""
    from PIL import Image

    from reid.data.decode import Decoder, read_frames

    records = []
    decoder = Decoder(None)
    for r in m.records:
        if r.frames or r.role != "train":
            records.append(r)
            continue
        d = out / r.tracklet_id
        d.mkdir(parents=True, exist_ok=True)
        frames = read_frames(m, r, np.arange(r.num_frames), decoder)
        files = []
        for i, f in enumerate(frames):
            Image.fromarray(f).save(d / f"{i:05d}.jpg", quality=95)
            files.append(f"{r.tracklet_id}/{i:05d}.jpg")
        records.append(replace(r, video=None, shard=None, frame_start=0, frames=tuple(files), num_frames=len(files)))
    return Manifest(records, out, m.dataset, m.attributes, m.meta)


class TorchreidStyleDataset:
    """torchreid's VideoDataset read path: PIL per frame, an independent transform per frame, float32 out."""

    def __init__(self, manifest: Manifest, seq_len: int, size: tuple[int, int], seed: int) -> None:
        import torchvision.transforms as T

        self.manifest, self.seq_len, self.seed = manifest, seq_len, seed
        self.transform = T.Compose([T.Resize(size), T.RandomHorizontalFlip(), T.Pad(10), T.RandomCrop(size),
                                    T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self) -> int:
        return len(self.manifest.records)

    def __getitem__(self, index: int):
        import torch
        from PIL import Image

        rec = self.manifest.records[index]
        idx = RestrictedSampler(self.seq_len)(rec.num_frames, np.random.default_rng([self.seed, index]))
        clip = []
        for i in idx:
            with Image.open(self.manifest.resolve(rec.frames[int(i)])) as im:
                clip.append(self.transform(im.convert("RGB")))
        return torch.stack(clip), rec.pid


def _rate(arrivals: list[float], clips_per_batch: int) -> float:
    if len(arrivals) < 2:
        raise ReidError("need at least 2 batches to measure a rate (--batches >= 2)")
    return (len(arrivals) - 1) * clips_per_batch / (arrivals[-1] - arrivals[0])


def bench_baseline(m: Manifest, rows: list[PlanRow], seq_len: int, size: tuple[int, int], workers: int) -> float:
    """Steady-state clips/s of the torchreid-style loader (its worker start-up left out, to its advantage)."""
    import torch

    ds = TorchreidStyleDataset(m, seq_len, size, seed=rows[0].epoch)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=[list(r.indices) for r in rows], num_workers=workers)
    arrivals = [time.perf_counter() for _ in loader]
    return _rate(arrivals, len(rows[0].indices))


def _raw_decoder(m: Manifest, cfg: ExperimentConfig):
    """rows -> clips decoded as the pipeline decodes them (a JPEG store's frames into a clip-sized array, as the
    actors decode into the batch's: one array reused here), no transforms; decoder and array made once."""
    from reid.data.decode import Decoder, read_frames

    decoder = Decoder(None)
    a = cfg.data.augment
    decoder.draft_size = (a.resize_height or cfg.data.height, a.resize_width or cfg.data.width)
    into = np.empty((cfg.data.seq_len, *decoder.draft_size, 3), dtype=np.uint8)
    sampler = RestrictedSampler(cfg.data.seq_len)

    def decode(rows: list[PlanRow]) -> int:
        n = 0
        for row in rows:
            for slot, index in enumerate(row.indices):
                rec = m.records[index]
                read_frames(m, rec, sampler(rec.num_frames, np.random.default_rng([row.seed, slot, 0])), decoder,
                            out=into)
                n += 1
        return n

    return decode


_RAW_TIMEOUT_S = 300.0  # a raw decoder process that has not started or finished by then has failed


@dataclass(frozen=True)
class RawSpan:
    """One raw decoder process's timed decode: clips, start and end (time.monotonic, one clock for every process
    of the machine) and the CPU-seconds of the process (all its threads: FFmpeg may decode on several)."""

    clips: int
    start: float
    end: float
    cpu_s: float


def _raw_process(manifest_path: str, rows: list[PlanRow], cfg: ExperimentConfig, barrier: Any, results: Any) -> None:
    """One raw decoder process: decode the first row untimed (imports, decoder set-up, first reads), wait for the
    others, then decode all of `rows`, timed: puts a RawSpan, or the error's one line (and breaks the barrier, so
    that the others do not wait for it)."""
    try:
        decode = _raw_decoder(read_manifest(manifest_path), cfg)
        decode(rows[:1])
        barrier.wait(_RAW_TIMEOUT_S)
        t0, c0 = time.monotonic(), time.process_time()
        n = decode(rows)
        results.put(RawSpan(n, t0, time.monotonic(), time.process_time() - c0))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it as one line
        barrier.abort()
        results.put(f"{type(exc).__name__}: {exc}")


def raw_spans(manifest_path: Path, rows: list[PlanRow], cfg: ExperimentConfig, processes: int) -> list[RawSpan]:
    """`processes` fresh processes each decode all of `rows`, started together (a barrier): their RawSpans.

    Fresh processes, not this one: here Ray's threads and the fits' leftovers run, and after a fit the same loop
    decoded 667-803 clips/s in this process against 787-818 in a fresh one (4 fits, 2-core development machine,
    2026-12-06): the decode limit is the fresh process's. Spawned, not forked: this process runs Ray's threads."""
    import multiprocessing
    import queue

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_raw_process, args=(str(manifest_path), rows, cfg, barrier, results), daemon=True)
             for _ in range(processes)]
    for p in procs:
        p.start()
    spans: list[RawSpan] = []
    deadline = time.monotonic() + _RAW_TIMEOUT_S
    try:
        while len(spans) < processes:
            try:
                got = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise ReidError("the raw decode failed: " + (
                        f"a process ended with status {dead[0]}" if dead else
                        f"not done after {_RAW_TIMEOUT_S:.0f} s")) from None
                continue
            if isinstance(got, str):
                raise ReidError(f"the raw decode failed: {got}")
            spans.append(got)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return spans


def bench_raw(manifest_path: Path, rows: list[PlanRow], cfg: ExperimentConfig) -> tuple[float, float]:
    """The decode limit: clips per second of one fresh process decoding the clips of `rows` in a tight loop as the
    pipeline decodes them (raw_spans), per wall second and per CPU-second of the process."""
    (span,) = raw_spans(manifest_path, rows, cfg, 1)
    return span.clips / (span.end - span.start), span.clips / max(span.cpu_s, 1e-9)


def bench_raw_parallel(manifest_path: Path, rows: list[PlanRow], cfg: ExperimentConfig, processes: int) -> float:
    """Clips per second of `processes` raw decoders at once (raw_spans): all their clips over the time from the
    first start to the last end. Against bench_raw's one process it is what this machine's cores give the decode
    itself from 1 to N, without the pipeline: the ceiling of the `1 -> N decoding actors` ratio here (on the 2-core
    development machine, 2026-12-06, inside `reid bench data` with Ray up and idle: JPEG store 1.75-1.95x, median
    1.83x in 21 repeats, video 1.71-1.77x; without Ray 1.81-2.17x, median 1.94x, in 5 pairs)."""
    spans = raw_spans(manifest_path, rows, cfg, processes)
    return sum(s.clips for s in spans) / (max(s.end for s in spans) - min(s.start for s in spans))


@dataclass
class FitTiming:
    """One pipeline fit: start-up, fit-level and steady-state rates (clips/s), decoding-actor starts."""

    startup_s: float
    fit_rate: float
    steady_rate: float
    actor_starts: int
    epoch_rates: list[float] = field(default_factory=list)
    cpu: CpuSplit | None = None  # first batch to last; None where it cannot be measured (cpu_split.py)
    actor_cpu_rate: float | None = None  # clips per CPU-second the decoding actors used in that window
    arrivals: list[list[float]] = field(default_factory=list)  # [epoch][batch]: seconds since the fit start


def bench_pipeline_fit(manifest_path: Path, cfg: ExperimentConfig, epochs: int) -> FitTiming:
    """A fit's data path, timed from the moment the Train worker would open its stream."""
    import ray

    from reid.data.pipeline import DECODING_ACTOR, open_rank_stream

    name, ledger = bench_ledger("bench-data")
    clips = cfg.data.ids_per_batch * cfg.data.tracklets_per_id
    watch = cpu_split.Watch(DECODING_ACTOR)
    watch.start()  # before the clock: its first reading of /proc is not the fit's
    t0 = time.perf_counter()
    stream = open_rank_stream(manifest_path, cfg.data, cfg.seed, {"frames"}, "pk", rank=0, world_size=1,
                              start_epoch=0, end_epoch=epochs, ledger_name=name)
    per_epoch: list[list[float]] = []
    for epoch in range(epochs):
        per_epoch.append([])
        for _ in stream.epoch(epoch):
            per_epoch[-1].append(time.perf_counter())
            if len(per_epoch) == 1 and len(per_epoch[0]) == 1:  # where the CPUs went: first batch to last
                watch.mark()
    cpu = watch.stop()
    arrivals = [t for e in per_epoch for t in e]
    starts = ray.get(ledger.decoder_starts.remote())
    steady = epoch_rates(per_epoch, clips)
    return FitTiming(arrivals[0] - t0, _rate(arrivals, clips), statistics.median(steady), starts, steady, cpu,
                     actor_cpu_rate(watch.whole, ray.get(ledger.decoder_ready_cpu.remote()), len(arrivals) * clips,
                                    cfg.data.decode_workers),
                     [[t - t0 for t in e] for e in per_epoch])


def actor_cpu_rate(whole: CpuSplit | None, ready_cpu_s: float, clips: int, pool: int) -> float | None:
    """Clips per CPU-second the decoding actors spent making them: every clip of the fit over the actors' CPU from
    the stream's opening to the last batch less what they had used when ready (imports, set-up; the ledger's
    `decoder_ready_cpu`). None when the window did not see exactly the pool's actors start.

    Not the window from the first batch: the actors decode from their first task on, and the batches they finish
    before the reader takes the first one are counted in that window but their CPU is not: `reid bench data` at
    8b94d70, whose JPEG fits' first batches came up to 2.7 s after their streams opened, printed `cpu/raw` 0.93
    that way, against 0.58-0.69 in the runs before (2-core machine, 2026-12-06)."""
    if whole is None or whole.actor_processes != pool or whole.actors <= ready_cpu_s:
        return None
    return clips / (whole.actors - ready_cpu_s)


def epoch_rates(per_epoch: list[list[float]], clips_per_batch: int) -> list[float]:
    """Clips/s of each epoch after the first: its clips over the time from the previous epoch's last batch to its
    own last (a 1-epoch fit: its first batch to its last). A decoding task's batches reach the reader together, so
    a rate from an epoch's FIRST batch would count the batches that arrived with it as free (one video epoch
    printed 306 clips/s that way, above what its 2 actors decode, 2026-12-05); last-to-last counts every batch. It
    measures delivery: an epoch that hands over a backlog decoded during the one before can still exceed the
    decode rate, so the fit-level rate is the one to compare."""
    if len(per_epoch) == 1:
        return [_rate(per_epoch[0], clips_per_batch)]
    return [len(e) * clips_per_batch / (e[-1] - prev[-1]) for prev, e in zip(per_epoch[:-1], per_epoch[1:], strict=True)]


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _median_timing(runs: list[FitTiming]) -> FitTiming:
    return FitTiming(statistics.median(r.startup_s for r in runs), statistics.median(r.fit_rate for r in runs),
                     statistics.median(r.steady_rate for r in runs), max(r.actor_starts for r in runs))


def median_fit(runs: list[FitTiming]) -> FitTiming:
    """The fit whose fit-level rate is the median of the runs' (the upper middle one of an even count)."""
    return sorted(runs, key=lambda r: r.fit_rate)[len(runs) // 2]


def measure_store(store: str, m: Manifest, path: Path, args: argparse.Namespace, cfg: ExperimentConfig,
                  plans: list[list[PlanRow]]) -> tuple[dict[str, float], StoreTimeline]:
    """Every number of one store, measured side by side (interleaved over the repeats), and the batch arrivals of
    its median N-actor and 1-actor fits (for --plot)."""
    cfg_1 = cfg.model_copy(update={"data": cfg.data.model_copy(update={"decode_workers": 1})})
    raw, raw_cpu, raw_n, fit_n, fit_1 = [], [], [], [], []
    for rep in range(args.repeats):
        wall_rate, cpu_rate = bench_raw(path, plans[rep % len(plans)], cfg)
        raw.append(wall_rate)
        raw_cpu.append(cpu_rate)
        if args.workers > 1:
            raw_n.append(bench_raw_parallel(path, plans[rep % len(plans)], cfg, args.workers))
        fit_n.append(bench_pipeline_fit(path, cfg, args.epochs))
        if args.workers > 1:
            fit_1.append(bench_pipeline_fit(path, cfg_1, args.epochs))
        _progress(f"{store} repeat {rep + 1}/{args.repeats}: raw {raw[-1]:.1f} clips/s, pipeline x{args.workers} "
                  f"fit-level {fit_n[-1].fit_rate:.1f} (start-up {fit_n[-1].startup_s:.1f} s, steady "
                  f"{fit_n[-1].steady_rate:.1f})" + (f", x1 {fit_1[-1].fit_rate:.1f}" if fit_1 else "")
                  + (f", raw x{args.workers} processes {raw_n[-1]:.1f}" if raw_n else ""))
    n = _median_timing(fit_n)
    one = _median_timing(fit_1) if fit_1 else n
    numbers = {"bytes_per_frame": bytes_per_frame(m), "raw": statistics.median(raw), "startup_s": n.startup_s,
               **({"raw_parallel": statistics.median(raw_n)} if raw_n else {}),
               "fit": n.fit_rate, "steady": n.steady_rate, "fit_1": one.fit_rate, "actor_starts": n.actor_starts,
               "raw_cpu": statistics.median(raw_cpu), **cpu_columns(fit_n)}
    timeline = StoreTimeline(median_fit(fit_n).arrivals, median_fit(fit_1).arrivals if fit_1 else [],
                             numbers["raw"])
    return numbers, timeline


def cpu_columns(fits: list[FitTiming]) -> dict[str, float]:
    """Medians over the fits of where the CPUs went (cores kept busy, first batch to last), of the clips per
    decoding-actor CPU-second and of the part of the actors' CPU spent in the kernel; empty when any fit could not
    measure them (cpu_split.py)."""
    if not fits or any(f.cpu is None or f.cpu.actors <= 0 or f.actor_cpu_rate is None for f in fits):
        return {}  # no actor worked after the first batch (a tiny fit): no kernel share to give
    shares = {"cpu_actors": [f.cpu.share(f.cpu.actors) for f in fits],
              "cpu_consumer": [f.cpu.share(f.cpu.this_process) for f in fits],
              "cpu_rest": [f.cpu.share(f.cpu.rest) for f in fits],
              "cpu_idle": [f.cpu.share(f.cpu.idle) for f in fits],
              "actor_cpu": [f.actor_cpu_rate for f in fits],
              "actor_kernel": [f.cpu.actors_kernel / f.cpu.actors for f in fits]}
    return {"cores": fits[0].cpu.cores, **{k: statistics.median(v) for k, v in shares.items()}}


def format_report(title: str, stores: dict[str, dict[str, float]], baseline: float, workers: int,
                  default: str) -> str:
    """The table and the target lines; `default` is the store the ratio lines speak of."""
    lines = [title, f"{'store':<7}{'bytes/frame':>12}{'raw/core':>10}{'start-up':>10}{'fit-level':>11}"
                    f"{'fit/core':>10}{'steady':>9}{'fit/raw':>9}{'x1 actor':>10}{'1->N':>7}"]
    for name, s in stores.items():
        per_core = s["fit"] / workers
        lines.append(f"{name:<7}{s['bytes_per_frame']:>12.0f}{s['raw']:>10.1f}{s['startup_s']:>9.1f}s"
                     f"{s['fit']:>11.1f}{per_core:>10.1f}{s['steady']:>9.1f}{per_core / s['raw']:>9.2f}"
                     f"{s['fit_1']:>10.1f}{s['fit'] / s['fit_1']:>7.2f}")
    lines.append(f"{'torchreid-style DataLoader (PIL per frame, float32)':<52}{baseline:>8.1f} clips/s, "
                 f"{baseline / workers:.1f} per core")
    s = stores[default]
    per_core = s["fit"] / workers
    lines += [f"(clips/s; {workers} decoding actors = {workers} DataLoader workers; start-up = fit start to first "
              f"batch; decoding-actor starts per fit: {int(s['actor_starts'])})",
              f"store: {default}",
              f"fit-level pipeline / raw decode per core: {per_core / s['raw']:.2f} (target >= 0.9)",
              *([f"  the same with 1 decoding actor: {s['fit_1'] / s['raw']:.2f} (its pipeline overhead, without "
                 f"the contention of {workers} actors for this machine's cores)"] if workers > 1 else []),
              f"fit-level pipeline / torchreid-style loader per core: {per_core / (baseline / workers):.2f} "
              f"(target >= 3)",
              f"1 -> {workers} decoding actors: {s['fit'] / s['fit_1']:.2f}x (target >= {0.9 * workers:.1f})",
              *([f"  raw decode, {workers} processes at once / 1 process: {s['raw_parallel'] / s['raw']:.2f}x "
                 f"(this machine's own ceiling for 1 -> {workers}: the decode alone, without the pipeline)"]
                if workers > 1 and "raw_parallel" in s else [])]
    measured = {name: v for name, v in stores.items() if "actor_cpu" in v}
    if not measured:
        lines.append("CPU split: not measured (it needs Linux's /proc and the decoding actors on this node)")
        return "\n".join(lines)
    cores = int(next(iter(measured.values()))["cores"])
    lines += [f"CPU in the {workers}-actor fits, first batch to last, in cores of this machine's {cores}; cpu/raw = "
              f"clips per decoding-actor",
              "CPU-second (the whole fit, the actors' start-up left out) / raw decode clips per CPU-second (the "
              "pipeline's CPU per clip against the raw decode's, contention aside); kernel = the actors' CPU spent in "
              "the kernel (mostly first touches of object-store pages as Ray copies each batch in):",
              f"{'store':<7}{'actors':>8}{'consumer':>10}{'rest':>7}{'idle':>7}{'cpu/raw':>9}{'kernel':>8}"]
    for name, v in stores.items():
        lines.append(f"{name:<7}{v['cpu_actors']:>8.2f}{v['cpu_consumer']:>10.2f}{v['cpu_rest']:>7.2f}"
                     f"{v['cpu_idle']:>7.2f}{v['actor_cpu'] / v['raw_cpu']:>9.2f}"
                     f"{100 * v['actor_kernel']:>7.0f}%" if name in measured else
                     f"{name:<7}not measured: some fit's window did not see exactly the pool's actors start and work "
                     f"(an actor restarted, ended before the first batch, or ran on another node)")
    return "\n".join(lines)


def burst_warning(batches: int, workers: int) -> str | None:
    """A warning when an epoch gives each decoding actor fewer than 4 batches: the actors then decode most of the
    epoch at once, largely during start-up, and the rates measure that burst, not the decode. Seen on a 16-core H200
    node, 2026-12-04: 8 batches for 14 actors gave 197 clips/s per actor against 63 for one actor (docs/gpu)."""
    if batches >= 4 * workers:
        return None
    return (f"warning: {batches} batches per epoch for {workers} decoding actors: the rates below measure a burst of "
            f"decodes begun during start-up, not the pipeline; give --batches >= {4 * workers}")


def run(args: argparse.Namespace) -> int:
    size = _size(args.size)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    bad = [s for s in stores if s not in STORES]
    if bad or not stores:
        raise ReidError(f"--stores takes {', '.join(STORES)} (comma-separated), got '{args.stores}'")
    if args.batches < 2 or args.repeats < 1 or args.workers < 1 or args.epochs < 1:
        raise ReidError("need --batches >= 2, --epochs >= 1, --repeats >= 1 and --workers >= 1")
    for flag, where, what in (("--json", args.json, "the JSON"), ("--plot", args.plot, "the plot")):
        if where:  # here, not after minutes of fits
            storage.check_writable(storage.local_only(where, flag, "bench data", writes=True), what)
    warning = burst_warning(args.batches, args.workers)
    if warning:
        _progress(warning)
    import ray

    from reid.data.pipeline import start_ray_data_actors
    from reid.ray_runtime import init_ray

    results: dict[str, dict[str, float]] = {}
    timelines: dict[str, StoreTimeline] = {}
    with tempfile.TemporaryDirectory(prefix="reid-bench-data-") as tmpdir:
        tmp = Path(tmpdir)
        source_path = _dataset(args, tmp)
        source = read_manifest(source_path)
        cfg = ExperimentConfig(seed=args.seed, train={"epochs": args.epochs}, data={
            "height": size[0], "width": size[1], "seq_len": args.seq_len, "train_sampler": "restricted",
            "ids_per_batch": args.ids_per_batch, "tracklets_per_id": args.tracklets_per_id,
            "batches_per_epoch": args.batches, "decode_workers": args.workers, "decode_cpus": 1.0,
            "augment": {"pad": 10, "flip": True, "random_erasing": 0.0}})
        plans = [pk_plan(source.records, seed=args.seed, epoch=e, ids_per_batch=args.ids_per_batch,
                         tracklets_per_id=args.tracklets_per_id, batches_per_epoch=args.batches)
                 for e in range(args.repeats)]
        frames = frames_manifest(source, tmp / "frames")
        base = statistics.median(bench_baseline(frames, rows, args.seq_len, size, args.workers) for rows in plans)
        _progress(f"torchreid-style loader: {base:.1f} clips/s")
        init_ray(num_cpus=args.workers, dashboard=False)  # one CPU per decoding actor; no-op inside a cluster
        # as `reid train`'s driver does while its Train workers start (pipeline.start_ray_data_actors): up before
        # the first fit, which a Train worker's stream never waits for either
        ray.get([h.__ray_ready__.remote() for h in start_ray_data_actors()])
        for store in stores:
            m = store_copy(source, store, tmp)
            path = source_path if m is source else m.root / "manifest.parquet"
            results[store], timelines[store] = measure_store(store, m, path, args, cfg, plans)
    train = sum(r.role == "train" for r in source.records)
    title = (f"reid bench data: {source.dataset or 'dataset'} ({train} train tracklets), T={args.seq_len}, "
             f"{size[0]}x{size[1]}, P x K = {args.ids_per_batch} x {args.tracklets_per_id}, {args.epochs} epochs x "
             f"{args.batches} batches per fit, {args.repeats} repeats (medians), {args.workers} decoding actors")
    default = min(results, key=lambda s: -results[s]["fit"])  # the faster store speaks in the target lines
    host = host_conditions()
    print(format_report(title, results, base, args.workers, default) + (f"\n{warning}" if warning else ""))
    print(f"host: {host['cpus']} CPUs ({host['cpu_model']}), code at {host['commit'] or 'an installed package'}, "
          f"Ray {host['ray']}, {host['date']}")
    if args.json:
        arrivals = {name: {f"actors_{args.workers}": t.arrivals_n, **({"actors_1": t.arrivals_1} if t.arrivals_1
                                                                       else {})} for name, t in timelines.items()}
        Path(args.json).write_text(json.dumps({"title": title, "conditions": host, "baseline": base,
                                               "workers": args.workers,
                                               "stores": results, "warning": warning, "arrivals_s": arrivals},
                                              indent=2) + "\n")
    if args.plot:
        clips = args.ids_per_batch * args.tracklets_per_id
        print(f"plot: {write_plot(Path(args.plot), title, timelines, args.workers, clips)}")
    return 0
