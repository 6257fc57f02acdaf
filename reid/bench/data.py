"""Clips/s of the Ray Data pipeline vs a torchreid-style DataLoader, and the raw decode limit.

Three readers of the SAME tracklets (the same P x K plan rows, T frames per clip by restricted random sampling, the
same output size), medians over --repeats:
  pipeline   reid.data.pipeline: --workers decoding actors (1 CPU each); decord, one batched random-access read per
             tracklet, one crop / flip per clip; uint8 out (normalisation happens later on the training device).
  baseline   what torchreid does: a torch DataLoader with --workers worker processes; every frame opened with PIL
             from its own JPEG file and transformed independently (Resize, flip, Pad 10 + RandomCrop, ToTensor,
             Normalize); float32 out. Video datasets are first unpacked to JPEG frames (not timed).
  raw decode the same frames decoded in a tight loop by one process, no transforms: the decode limit per core.
Throughput is steady state: from the first batch to the last, counting the batches after the first, so worker and
actor start-up is left out on both sides. Targets: pipeline per worker >= 1.5 x baseline per worker, and within 2x
of the raw decode limit (pipeline per worker >= 0.5 x raw).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from reid.config.schema import ExperimentConfig
from reid.data.plan import PlanRow, pk_plan
from reid.data.records import Manifest, read_manifest
from reid.data.sampling import RestrictedSampler
from reid.errors import ReidError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", help="manifest.parquet to read (default: generate the synthetic 'tiny' set)")
    p.add_argument("--root", help="dataset root holding manifest.parquet (alternative to --manifest)")
    p.add_argument("--seq-len", type=int, default=8, help="T, frames per clip")
    p.add_argument("--size", default="256x128", help="output frame size HxW")
    p.add_argument("--batches", type=int, default=8, help="P x K batches per repeat (>= 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is shown)")
    p.add_argument("--workers", type=int, default=2, help="decoding actors = DataLoader worker processes")
    p.add_argument("--ids-per-batch", type=int, default=4, help="P")
    p.add_argument("--tracklets-per-id", type=int, default=4, help="K")
    p.add_argument("--seed", type=int, default=0)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ReidError(f"--size must look like 256x128 (height x width), got '{text}'") from None
    return h, w


def _dataset(args: argparse.Namespace, tmp: Path) -> Path:
    if args.manifest or args.root:
        return Path(args.manifest or Path(args.root) / "manifest.parquet")
    try:
        from reid.data.synth import generate
    except ImportError:  # the generator is optional here: fall back to the moving-squares set
        from reid.bench.toydata import write_toy_dataset
        return write_toy_dataset(tmp / "toy", ids=16, num_frames=32, size=(128, 64))
    return generate(tmp / "synthetic", preset="tiny", seed=0)


def frames_manifest(m: Manifest, out: Path) -> Manifest:
    """The same records with one JPEG file per frame (videos are unpacked with PyAV; frame records are kept)."""
    import av
    from PIL import Image

    records = []
    for r in m.records:
        if r.frames or r.role != "train":
            records.append(r)
            continue
        d = out / r.tracklet_id
        d.mkdir(parents=True, exist_ok=True)
        files: list[str] = []
        with av.open(str(m.resolve(r.video))) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= r.frame_start + r.num_frames:
                    break
                if i >= r.frame_start:
                    Image.fromarray(frame.to_ndarray(format="rgb24")).save(d / f"{i:05d}.jpg", quality=95)
                    files.append(f"{r.tracklet_id}/{i:05d}.jpg")
        records.append(replace(r, video=None, frame_start=0, frames=tuple(files), num_frames=len(files)))
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


def _steady_rate(arrivals: list[float], clips_per_batch: int) -> float:
    if len(arrivals) < 2:
        raise ReidError("need at least 2 batches per repeat to measure a steady-state rate (--batches >= 2)")
    return (len(arrivals) - 1) * clips_per_batch / (arrivals[-1] - arrivals[0])


def bench_baseline(m: Manifest, rows: list[PlanRow], seq_len: int, size: tuple[int, int], workers: int) -> float:
    import torch

    ds = TorchreidStyleDataset(m, seq_len, size, seed=rows[0].epoch)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=[list(r.indices) for r in rows], num_workers=workers)
    arrivals = []
    for _ in loader:
        arrivals.append(time.perf_counter())
    return _steady_rate(arrivals, len(rows[0].indices))


def bench_raw(m: Manifest, rows: list[PlanRow], seq_len: int) -> float:
    """Decode-only clips/s of one process over the same clips (decord for videos, PIL for frame files)."""
    from reid.data.decode import decode_images, decode_video_inline

    t0 = time.perf_counter()
    n = 0
    for row in rows:
        for index in row.indices:
            rec = m.records[index]
            idx = RestrictedSampler(seq_len)(rec.num_frames, np.random.default_rng([row.seed, n]))
            if rec.video:
                decode_video_inline(m.resolve(rec.video), rec.frame_start, rec.num_frames, idx)
            else:
                decode_images([m.resolve(rec.frames[int(i)]) for i in np.unique(idx)])
            n += 1
    return n / (time.perf_counter() - t0)


def bench_pipeline(manifest_path: Path, cfg: ExperimentConfig, repeats: int, workers: int) -> list[float]:
    import ray

    from reid.data.pipeline import build_train_dataset, get_or_create_clock, iter_epoch

    started = not ray.is_initialized()
    if started:  # one CPU per decoding actor (the batch slots are built on the driver, no read task)
        ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        name = f"bench-data-{time.monotonic_ns()}"
        clock = get_or_create_clock(name)
        ds = build_train_dataset(manifest_path, cfg, {"frames"}, "pk", world_size=1, clock_name=name)
        rates = []
        for epoch in range(repeats):
            arrivals = []
            for _ in iter_epoch(ds.iterator(), clock, epoch):
                arrivals.append(time.perf_counter())
            rates.append(_steady_rate(arrivals, cfg.data.ids_per_batch * cfg.data.tracklets_per_id))
        return rates
    finally:
        if started:
            ray.shutdown()


def _progress(name: str, rates: list[float]) -> None:
    print(f"{name}: clips/s per repeat " + ", ".join(f"{r:.1f}" for r in rates), file=sys.stderr, flush=True)


def format_table(title: str, pipeline: float, baseline: float, raw: float, workers: int) -> str:
    per = (pipeline / workers, baseline / workers, raw)
    lines = [title,
             f"{'reader':<40}{'clips/s':>10}{'clips/s/core':>14}{'vs baseline':>13}",
             f"{'pipeline (Ray Data, decord, uint8)':<40}{pipeline:>10.1f}{per[0]:>14.1f}{per[0] / per[1]:>12.2f}x",
             f"{'baseline (DataLoader, PIL per frame)':<40}{baseline:>10.1f}{per[1]:>14.1f}{1.0:>12.2f}x",
             f"{'raw decode limit (1 process)':<40}{raw:>10.1f}{per[2]:>14.1f}{per[2] / per[1]:>12.2f}x",
             f"pipeline / baseline per core: {per[0] / per[1]:.2f} (target >= 1.5)",
             f"pipeline / raw decode limit per core: {per[0] / per[2]:.2f} (target >= 0.5)"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    size = _size(args.size)
    if args.batches < 2 or args.repeats < 1 or args.workers < 1:
        raise ReidError("need --batches >= 2, --repeats >= 1 and --workers >= 1")
    with tempfile.TemporaryDirectory(prefix="reid-bench-data-") as tmpdir:
        tmp = Path(tmpdir)
        manifest_path = _dataset(args, tmp)
        m = read_manifest(manifest_path)
        cfg = ExperimentConfig(seed=args.seed, data={
            "height": size[0], "width": size[1], "seq_len": args.seq_len, "train_sampler": "restricted",
            "ids_per_batch": args.ids_per_batch, "tracklets_per_id": args.tracklets_per_id,
            "batches_per_epoch": args.batches, "decode_workers": args.workers, "decode_cpus": 1.0,
            "augment": {"pad": 10, "flip": True, "random_erasing": 0.0}})
        plans = [pk_plan(m.records, seed=args.seed, epoch=e, ids_per_batch=args.ids_per_batch,
                         tracklets_per_id=args.tracklets_per_id, batches_per_epoch=args.batches)
                 for e in range(args.repeats)]
        raw_rates = [bench_raw(m, rows, args.seq_len) for rows in plans]
        _progress("raw decode", raw_rates)
        frames = frames_manifest(m, tmp / "frames") if any(r.video for r in m.records) else m
        base_rates = [bench_baseline(frames, rows, args.seq_len, size, args.workers) for rows in plans]
        _progress("baseline", base_rates)
        pipe_rates = bench_pipeline(manifest_path, cfg, args.repeats, args.workers)
        _progress("pipeline", pipe_rates)
        raw, baseline, pipeline = (statistics.median(r) for r in (raw_rates, base_rates, pipe_rates))
    train = sum(r.role == "train" for r in m.records)
    title = (f"reid bench data: {m.dataset or 'dataset'} ({train} train tracklets), T={args.seq_len}, "
             f"{size[0]}x{size[1]}, P x K = {args.ids_per_batch} x {args.tracklets_per_id}, {args.batches} batches x "
             f"{args.repeats} repeats (medians), {args.workers} workers")
    print(format_table(title, pipeline, baseline, raw, args.workers))
    return 0
