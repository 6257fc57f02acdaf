"""Every GPU check in one command (at most --budget-s, default 8 minutes, on one GPU): writes a markdown and a JSON
summary under --out (default docs/gpu/gpu-<date>.{md,json}), and the fed rows of 1. as a figure (gpu-<date>.png:
GPU busy and clips/s against the decoding CPUs per store; reid/bench/gpu_plot.py).

  1. fed training: ResNet-50 baseline, T=8, 256x128, bf16, P x K = 16 x 4 (the synthetic set rendered at 256x128,
     random initialisation). GPU-only step time and clips/s on a resident batch, then the same steps fed by the Ray
     Data pipeline with 1, 2, 4, ... decoding actors for each frame store: GPU busy fraction (step compute / wall
     time, as before), clips/s, the input preparation per step (`normalize_inputs`), the busy fraction with it
     counted ((input + step compute) / wall), and the decoding CPUs that keep the GPU >= 90 % busy by the latter.
     Stores: `video` (H.264), `jpeg` (the actors decode with libjpeg-turbo and augment),
     `jpeg-trainer` (the same JPEG store with data.jpeg_decode=trainer: the actors only read bytes, the GPU decodes
     them with nvJPEG and augments; its input preparation holds that decode).
  2. every registered method: forward + backward in bf16 with its packaged real-data recipe (pretrained=false):
     finite loss, step time, peak memory.
  3. 1 -> N GPU DDP step time when several GPUs are visible.
  4. nvJPEG: JPEG frames/s decoded on the GPU (`torchvision.io.decode_jpeg(..., device="cuda")`, batched).
  5. `reid pose`'s Keypoint R-CNN (random weights: timing only): seconds per 256x128 frame at --min-size 800 and
     256, batches of 32 (reid/bench/pose.py).
  6. the tests marked `gpu` (they live in tests/gpu).
--manifest measures on a set of videos you already have (a packed real set, or the synthetic set rendered elsewhere
at 256x128, for a node without PyAV) instead of rendering the synthetic set here.
Without a CUDA device it stops at once with a clear message and a non-zero status. A section that fails is written
into the summary with its error and the command exits 1 after the others ran.

  reid bench gpu                               # on a GPU node (or: ray job submit ... -- reid bench gpu)
  reid bench gpu --budget-s 300 --stores jpeg,jpeg-trainer
  reid bench gpu --manifest data/mars-video/manifest.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reid import storage
from reid.bench.gpu_plot import BUSY_TARGET, busy, write_fed_plot
from reid.bench.host import host_conditions
from reid.errors import ReidError

GPU_TESTS = "tests/gpu"  # every test marked gpu lives here (tests/bench/test_bench_gpu.py checks it)
HEADLINE = ["data.height=256", "data.width=128", "data.seq_len=8", "data.ids_per_batch=16",
            "data.tracklets_per_id=4", "model.depth=50", "model.pretrained=false", "train.amp=true"]
# the synthetic set it measures on by default (render_synthetic)
STORES = ("video", "jpeg", "jpeg-trainer")
# what a store adds to the headline (jpeg-trainer: the jpeg store's copy, decoded on the GPU)
STORE_OVERRIDES = {"jpeg-trainer": ["data.jpeg_decode=trainer"]}
SYNTH = dict(preset="tiny", seed=0, height=256, width=128, ids_train=32, cameras=4)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="docs/gpu", help="folder for gpu-<date>.md and gpu-<date>.json")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget for all sections")
    p.add_argument("--stores", default=",".join(STORES),
                   help="frame stores to feed the GPU from: video, jpeg (decoded by the actors), jpeg-trainer (the "
                        "JPEG store decoded on the GPU, data.jpeg_decode=trainer); comma-separated")
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    p.add_argument("--actors", default=None,
                   help="decoding-actor counts to try (comma-separated; default 1,2,4,... up to the node's CPUs - 2)")
    p.add_argument("--skip-tests", action="store_true", help="do not run the tests marked gpu (tests/gpu)")
    p.add_argument("--manifest", default=None,
                   help="a manifest of videos to measure on (default: render the synthetic 'tiny' set at "
                        "256x128 with 32 training identities in 4 cameras here)")


def step_time(method: str, files: list[str], overrides: list[str], manifest_path: Path, device: Any,
              steps: int, warmup: int = 3, wrap: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Forward + backward + optimiser step of `method` on one real batch resident on `device` (bf16 autocast on
    CUDA): seconds per step, clips/s, peak memory, the last loss (must be finite). `wrap` (e.g. DDP) is applied to
    the model on `device`."""
    import torch

    from reid.config import build_config
    from reid.data.batching import BatchMaker, to_torch
    from reid.data.decode import Decoder
    from reid.data.info import data_info
    from reid.data.inputs import normalize_inputs
    from reid.data.plan import global_plan
    from reid.data.records import read_manifest
    from reid.models.factory import build_method
    from reid.training.optim import build_optimizer
    from reid.training.step import StepTimes, memory_format, train_step

    # no validation split: the plan below draws from every training identity, so the classifier counts them all
    cfg = build_config(method, files, [f"data.manifest={manifest_path}", "data.val_identities=0", *overrides])
    manifest = read_manifest(manifest_path)
    built = build_method(cfg, data_info(manifest, cfg.data), train=True, device=device)
    spec, model, objective = built.spec, built.model, built.objective
    model = memory_format(model, cfg.train.channels_last, device)
    model = wrap(model) if wrap is not None else model
    objective.to(device)
    params = [p for p in objective.parameters() if p.requires_grad]
    opt = build_optimizer(model, cfg.optim)
    if params:
        opt.add_param_group({"params": params, "lr": cfg.optim.lr, "lr_mult": 1.0})
    maker = BatchMaker(manifest, cfg.data, spec.inputs, train=True, decoder=Decoder(None))
    row = global_plan(manifest.records, cfg.data, cfg.seed, spec.batching, 0, 1)[0]
    batch = normalize_inputs(to_torch(maker(row)), spec, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = StepTimes()
    values: dict[str, float] = {}
    for i in range(warmup + steps):
        values = train_step(model, objective, batch, [opt], device=device, amp=cfg.train.amp, grad_clip=None,
                            scaler=None, times=times if i >= warmup else StepTimes(), where=f"bench step {i}")
    per_step = (times.forward + times.backward + times.optimizer) / steps
    return {"method": method, "step_s": per_step, "clips_per_s": times.clips / steps / per_step,
            "batch": int(batch["pid"].shape[0]), "loss": values["loss"],
            "finite": all(math.isfinite(v) for v in values.values()),
            "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0}


def method_step(method: str, manifest_path: Path, device: Any, steps: int) -> dict[str, Any]:
    """`step_time` with the method's packaged real-data recipe (its paper's sizes) on the synthetic frames; falls
    back to its synthetic recipe when the real one needs files the synthetic set lacks (said in `recipe`)."""
    from reid.registry import get_method

    spec = get_method(method)
    extra = ["data.dataset=synthetic", "train.amp=true"]
    if "pretrained" in spec.model_params.model_fields:
        extra.append("model.pretrained=false")  # no weights download here; speed does not depend on them
    try:
        return {"recipe": method, **step_time(method, [method], extra, manifest_path, device, steps)}
    except ReidError as exc:
        res = step_time(method, [f"{method}-synthetic"], extra, manifest_path, device, steps)
        return {"recipe": f"{method}-synthetic ({method}: {exc})", **res}


def fed_busy(manifest_path: Path, overrides: list[str], device: Any, actors: int, steps: int) -> dict[str, Any]:
    """The headline steps fed by the pipeline with `actors` decoding actors, over `steps` steps after the start-up
    burst: `busy` = step compute / wall time; `gpu_busy` = (input preparation + step compute) / wall time, where
    input preparation (`input_ms` per step) is `normalize_inputs`: copy and normalisation, plus the nvJPEG decode
    and augmentation with data.jpeg_decode=trainer (GPU work that `busy` leaves out)."""
    import torch

    from reid.bench.data import bench_ledger
    from reid.config import build_config
    from reid.data.info import data_info
    from reid.data.inputs import normalize_inputs
    from reid.data.pipeline import open_rank_stream
    from reid.models.factory import build_method
    from reid.training.optim import build_optimizer
    from reid.training.step import StepTimes, memory_format, train_step

    # the actors decode their first batches together while the pool starts, and those arrive in one burst that the
    # GPU then eats back to back: the timed window starts after them (2026-12-04's runs started after 2 batches, so
    # their 8- and 14-actor rows included up to 6 and 12 such batches of 20: docs/gpu/README.md)
    warmup = actors + 2
    cfg = build_config("baseline", ["baseline"], [
        f"data.manifest={manifest_path}", "data.val_identities=0", *overrides, f"data.decode_workers={actors}",
        "data.decode_cpus=1",
        f"data.batches_per_epoch={warmup + steps}", "train.epochs=1"])
    from reid.data.records import read_manifest

    built = build_method(cfg, data_info(read_manifest(manifest_path), cfg.data), train=True, device=device)
    spec, model, objective = built.spec, built.model, built.objective
    model = memory_format(model, cfg.train.channels_last, device)
    objective.to(device)
    opt = build_optimizer(model, cfg.optim)
    name, _ = bench_ledger(f"bench-gpu-{actors}")
    stream = open_rank_stream(manifest_path, cfg.data, cfg.seed, spec.inputs, spec.batching, rank=0, world_size=1,
                              start_epoch=0, end_epoch=cfg.train.epochs, ledger_name=name, prefetch_batches=4)
    times, wall0, inputs_s = StepTimes(), None, 0.0
    for i, raw in enumerate(stream.epoch(0)):
        if i == warmup:
            wall0, times, inputs_s = time.perf_counter(), StepTimes(), 0.0
        t0 = time.perf_counter()
        batch = normalize_inputs(raw, spec, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        inputs_s += time.perf_counter() - t0
        train_step(model, objective, batch, [opt], device=device, amp=True, grad_clip=None, scaler=None,
                   times=times, where=f"fed step {i}")
    wall = time.perf_counter() - wall0
    compute = times.forward + times.backward + times.optimizer
    return {"actors": actors, "busy": compute / wall, "clips_per_s": times.clips / wall,
            "input_ms": 1000 * inputs_s / steps, "gpu_busy": (compute + inputs_s) / wall}


def render_synthetic(out: Path) -> Path:
    """The synthetic set of the headline: 'tiny' at 256x128 with 32 training identities seen by 4 cameras, enough for
    P x K = 16 x 4 without repeating a tracklet in a batch (PyAV encodes its videos)."""
    from reid.data.synth import generate

    return generate(out / "synthetic", workers=min(8, os.cpu_count() or 1), **SYNTH)


def nvjpeg_rate(manifest_path: Path, device: Any, frames: int = 2048, batch: int = 256) -> dict[str, Any]:
    """JPEG frames/s decoded on the GPU in batches (the JPEG store's bytes, read once into host memory)."""
    import torch
    from torchvision.io import decode_jpeg

    from reid.data.jpeg_store import ShardReader
    from reid.data.records import read_manifest

    m = read_manifest(manifest_path)
    reader, blobs = ShardReader(), []
    for r in m.records:
        blobs += reader.blobs(m.resolve(r.shard), r.shard_row, range(r.num_frames))
        if len(blobs) >= frames:
            break
    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs[:frames]]
    decode_jpeg(data[:batch], device=device)  # warm-up (nvJPEG handles)
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for i in range(0, len(data), batch):
        decode_jpeg(data[i:i + batch], device=device)
    torch.cuda.synchronize(device)
    return {"frames": len(data), "frames_per_s": len(data) / (time.perf_counter() - t0),
            "bytes_per_frame": sum(len(b) for b in blobs[:frames]) / len(data)}


def pose_rate(device: Any, frames: int = 64, sizes: tuple[int, ...] = (800, 256)) -> list[dict[str, Any]]:
    """`reid pose`'s estimator on random 256x128 frames at --min-size 800 (its default) and 256 (reid/bench/pose.py)."""
    from reid.bench.pose import load_frames, measure

    images, _ = load_frames(None, frames, (256, 128))
    return measure(images, list(sizes), random_weights=True, batch_size=32, device=str(device), repeats=2)


def _ddp_worker(rank: int, world: int, manifest_path: str, port: int, out: str, steps: int) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    try:
        def ddp(model):
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])

        res = step_time("baseline", ["baseline"], HEADLINE, Path(manifest_path), torch.device("cuda", rank), steps,
                        wrap=ddp)
        if rank == 0:
            Path(out).write_text(json.dumps(res))
    finally:
        dist.destroy_process_group()


def ddp_scaling(manifest_path: Path, steps: int) -> dict[str, Any]:
    import socket

    import torch
    import torch.multiprocessing as mp

    n = torch.cuda.device_count()
    out: dict[str, Any] = {"gpus": n}
    for world in (1, n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            path = f.name
        mp.spawn(_ddp_worker, args=(world, str(manifest_path), port, path, steps), nprocs=world, join=True)
        out[f"step_s_{world}"] = json.loads(Path(path).read_text())["step_s"]
    out["scaling"] = out["step_s_1"] / out[f"step_s_{n}"]  # per-GPU batch fixed: ideal = 1.0 (same step time)
    return out


def gpu_tests(timeout_s: float) -> dict[str, Any]:
    """`pytest -m gpu tests/gpu` in a checkout of the project (an installed wheel ships no tests: said, not failed)."""
    if not Path(GPU_TESTS).is_dir():
        return {"skipped": f"no {GPU_TESTS} under {Path.cwd()} (run reid bench gpu from a checkout to include them)"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", GPU_TESTS],
                          capture_output=True, text=True, timeout=max(30.0, timeout_s))
    tail = [line for line in proc.stdout.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
    return {"returncode": proc.returncode, "summary": tail[0]}


class Sections:
    """Runs sections within a wall-clock budget; a failure is recorded, not raised."""

    def __init__(self, budget_s: float) -> None:
        self.deadline = time.monotonic() + budget_s
        self.results: dict[str, Any] = {}
        self.failed = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, fn: Callable[[], Any], need_s: float = 20.0) -> Any:
        if self.left() < need_s:
            self.results[name] = {"skipped": f"time budget ({self.left():.0f} s left, needs ~{need_s:.0f} s)"}
            return None
        t0 = time.monotonic()
        print(f"[reid bench gpu] {name} ...", file=sys.stderr, flush=True)
        try:
            value = fn()
        except Exception as exc:
            self.failed = True
            self.results[name] = {"error": f"{type(exc).__name__}: {exc}",
                                  "where": traceback.format_exc().strip().splitlines()[-3:]}
            return None
        self.results[name] = value
        print(f"[reid bench gpu] {name}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        return value


def _actor_counts(text: str | None) -> list[int]:
    if text:
        return [int(v) for v in text.split(",")]
    cpus = max(1, (os.cpu_count() or 2) - 2)
    counts, n = [], 1
    while n < cpus:
        counts.append(n)
        n *= 2
    return counts + [cpus]


def run(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        raise ReidError("reid bench gpu needs a CUDA device and none is visible (torch.cuda.is_available() is "
                        "False); run it on a GPU node, e.g. `ray job submit --entrypoint-num-gpus 1 -- reid bench gpu`")
    from reid.bench.data import store_copy
    from reid.data.records import read_manifest
    from reid.ray_runtime import init_ray
    from reid.registry import list_methods

    device = torch.device("cuda", 0)
    sections = Sections(args.budget_s)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        raise ReidError(f"--stores: unknown {unknown}; expected some of {', '.join(STORES)}")
    out = storage.local_only(args.out, "--out", "bench gpu", writes=True)  # checked now, not after the GPU's minutes
    storage.check_writable(out / f"gpu-{dt.date.today().isoformat()}.json", "the summary")
    summary: dict[str, Any] = {"date": dt.date.today().isoformat(), "gpu": torch.cuda.get_device_name(0),
                               "gpus": torch.cuda.device_count(), "cpus": os.cpu_count(), "torch": torch.__version__,
                               "headline": " ".join(HEADLINE), "host": host_conditions()}
    with tempfile.TemporaryDirectory(prefix="reid-bench-gpu-") as tmpdir:
        tmp = Path(tmpdir)
        source = (storage.local_only(args.manifest, "--manifest", "bench gpu", writes=False) if args.manifest
                  else render_synthetic(tmp))
        summary["data"] = str(args.manifest) if args.manifest else "synthetic " + ", ".join(
            f"{k}={v}" for k, v in SYNTH.items())
        paths = {"video": source}
        if {"jpeg", "jpeg-trainer"} & set(stores):
            paths["jpeg"] = store_copy(read_manifest(source), "jpeg", tmp).root / "manifest.parquet"
            paths["jpeg-trainer"] = paths["jpeg"]
        gpu_only = sections.run("gpu_only", lambda: step_time("baseline", ["baseline"], HEADLINE, source, device,
                                                              args.steps))
        init_ray(num_cpus=os.cpu_count(), dashboard=False)
        fed: dict[str, list[dict[str, Any]]] = {}
        for store in stores:
            fed[store] = []
            for actors in _actor_counts(args.actors):
                res = sections.run(f"fed_{store}_{actors}", lambda s=store, a=actors: fed_busy(
                    paths[s], HEADLINE + STORE_OVERRIDES.get(s, []), device, a, args.steps), need_s=40)
                if res is None:
                    break
                fed[store].append(res)
                if busy(res) >= BUSY_TARGET:
                    break
        methods = {}
        for method in list_methods():
            methods[method] = sections.run(f"method_{method}", lambda m=method: method_step(
                m, source, device, max(3, args.steps // 3)))
        if torch.cuda.device_count() > 1:
            sections.run("ddp", lambda: ddp_scaling(source, args.steps), need_s=90)
        else:
            sections.results["ddp"] = {"skipped": "one GPU visible"}
        if "jpeg" in paths:
            sections.run("nvjpeg", lambda: nvjpeg_rate(paths["jpeg"], device))
        sections.run("pose", lambda: pose_rate(device))
        if not args.skip_tests:
            tests = sections.run("gpu_tests", lambda: gpu_tests(sections.left() - 5), need_s=30)
            sections.failed |= bool(tests and tests.get("returncode", 0) != 0)  # a failing GPU test fails the command
    summary.update(sections.results)
    summary["fed"] = fed
    summary["methods"] = methods
    summary["decode_cpus_for_90pct"] = {s: next((r["actors"] for r in fed[s] if busy(r) >= BUSY_TARGET), None)
                                        for s in fed}
    if gpu_only:
        summary["gpu_only_clips_per_s"] = gpu_only["clips_per_s"]
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"gpu-{summary['date']}"
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    png = write_fed_plot(summary, stem.with_suffix(".png"))
    stem.with_suffix(".md").write_text(format_markdown(summary) + (
        f"\n![GPU busy and clips/s against the decoding CPUs]({png.name})\n" if png else ""))
    print(format_markdown(summary))
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}" + (f" and {png}" if png else ""))
    return 1 if sections.failed else 0


def format_markdown(s: dict[str, Any]) -> str:
    lines = [f"# reid bench gpu, {s['date']}", "",
             f"{s['gpu']} x {s['gpus']}, {s['cpus']} CPUs, torch {s['torch']}. Headline: baseline "
             f"`{s['headline']}`, bf16 autocast, random initialisation. Frames: {s.get('data', 'synthetic')}.", ""]
    if s.get("host"):
        h = s["host"]
        code = h.get("commit") or "an installed package"
        lines += [f"Host: {h.get('cpu_model')}, code at {code}, Ray {h.get('ray')}, {h.get('date')}.", ""]
    g = s.get("gpu_only") or {}
    if "step_s" in g:
        lines += [f"GPU only (resident batch of {g['batch']} clips): {g['step_s'] * 1000:.1f} ms/step, "
                  f"{g['clips_per_s']:.0f} clips/s, peak {g['peak_mem_gib']:.1f} GiB.", ""]
    lines += ["| store | decoding actors | GPU busy (step) | clips/s | input ms/step | GPU busy (input + step) |",
              "|---|---:|---:|---:|---:|---:|"]
    for store, rows in s.get("fed", {}).items():
        for r in rows:
            ms = f"{r['input_ms']:.1f}" if "input_ms" in r else ""
            both = f"{r['gpu_busy']:.2f}" if "gpu_busy" in r else ""
            lines.append(f"| {store} | {r['actors']} | {r['busy']:.2f} | {r['clips_per_s']:.0f} | {ms} | {both} |")
    lines += ["", "Decoding CPUs that keep the GPU >= 90 % busy (input + step): " + ", ".join(
        f"{k}: {v if v is not None else 'not reached'}" for k, v in s.get("decode_cpus_for_90pct", {}).items()), "",
        "| method | step (ms) | clips/s | peak GiB | loss finite |", "|---|---:|---:|---:|---|"]
    for name, r in s.get("methods", {}).items():
        r = r or s.get(f"method_{name}", {})
        if "step_s" in r:
            lines.append(f"| {name} | {r['step_s'] * 1000:.1f} | {r['clips_per_s']:.0f} | {r['peak_mem_gib']:.2f} | "
                         f"{r['finite']} |")
        else:
            lines.append(f"| {name} | {r.get('error') or r.get('skipped')} | | | |")
    for key in ("ddp", "nvjpeg", "pose", "gpu_tests"):
        if key == "pose" and isinstance(s.get(key), list):
            lines += ["", "pose (`reid pose`'s Keypoint R-CNN, random weights, 256x128 frames, batches of 32): "
                      + ", ".join(f"--min-size {r['min_size']}: {r['s_per_frame'] * 1000:.1f} ms/frame"
                                  for r in s[key])]
        else:
            lines += ["", f"{key}: `{json.dumps(s.get(key), default=str)}`"]
    errors = {k: v["error"] for k, v in s.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["", "Failed sections:"] + [f"- {k}: {v}" for k, v in errors.items()]
    return "\n".join(lines) + "\n"
