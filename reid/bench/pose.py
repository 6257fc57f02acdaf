"""Keypoint R-CNN (`reid pose`) time per frame at several `--min-size` values, and how far the keypoints move.

`reid pose` resizes each frame so that its shorter side is --min-size (torchvision's 800 unless --max-size caps the
longer side at 1333) before the network: a 256x128 person crop enters it at 1333x666. This bench runs the estimator
of `reid pose` on the same frames at each size (median seconds per frame over --repeats, after a warm-up pass) and,
with COCO weights, how far each size's keypoints lie from the first size's: the median distance in the frames'
pixels over the joints confident (>= 0.3) at both, and the share of the first size's confident joints that stay
confident. Frames: the first tracklets of --manifest, read as `reid pose` reads them, or random frames of --height x
--width (timing only). With --manifest it also prints how long `reid pose` would take for all its frames, per worker.

  reid bench pose --manifest data/mars --min-sizes 800,384,256 --weights keypointrcnn_resnet50_fpn_coco-fc266e95.pth
  reid bench pose --random-weights --threads 1          # timing only, as a `reid pose` actor of 1 CPU runs
  reid bench pose --random-weights --device cuda --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from reid import storage
from reid.errors import ReidError

CONFIDENT = 0.3  # a joint's confidence (sigmoid of Keypoint R-CNN's score) counted as found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", help="frames of this manifest's first tracklets (default: random frames)")
    parser.add_argument("--frames", type=int, default=16, help="frames to run at each size (default 16)")
    parser.add_argument("--min-sizes", default="800,384,256",
                        help="comma-separated --min-size values of `reid pose`; the first is the reference")
    parser.add_argument("--max-size", type=int, default=1333, help="cap of the longer side (torchvision: 1333)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per size (median; default 3)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA if present")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (`reid pose` gives an actor its --cpus-per-worker; 0: torch's "
                             "default, all cores)")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per forward pass (as `reid pose`)")
    parser.add_argument("--proposals", type=int, default=1000, help="region proposals per frame (as `reid pose`)")
    parser.add_argument("--weights", help="Keypoint R-CNN COCO state dict (default: the torchvision cache)")
    parser.add_argument("--random-weights", action="store_true",
                        help="untrained network: timing only, the keypoint comparison is left out")
    parser.add_argument("--height", type=int, default=256, help="random frames' height (default 256)")
    parser.add_argument("--width", type=int, default=128, help="random frames' width (default 128)")
    parser.add_argument("--json", help="write the measurements to this JSON file")


def parse_sizes(text: str) -> list[int]:
    """`--min-sizes` ("800,256") -> [800, 256]; a one-line error for anything else."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s < 16 for s in sizes) or len(set(sizes)) != len(sizes):
        raise ReidError(f"--min-sizes {text!r}: expected distinct comma-separated sizes >= 16, e.g. 800,384,256")
    return sizes


def network_input(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """The size torchvision's GeneralizedRCNNTransform resizes a height x width frame to (before its padding to a
    multiple of 32): scale = min(min_size / shorter side, max_size / longer side)."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return round(height * scale), round(width * scale)


def load_frames(manifest_path: str | None, count: int, size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, int]:
    """uint8 [count, H, W, 3] frames and the frames in the manifest (0 without one): the first tracklets' frames in
    order, resized to the first frame's size where a dataset mixes sizes (as a `reid pose` batch could not)."""
    if manifest_path is None:
        return np.random.default_rng(seed).integers(0, 256, (count, *size, 3), dtype=np.uint8), 0
    from PIL import Image

    from reid.data.decode import Decoder, read_frames
    from reid.data.records import read_manifest

    manifest = read_manifest(manifest_path)
    decoder, frames = Decoder(), []
    for record in manifest.records:
        if len(frames) >= count:
            break
        take = min(record.num_frames, count - len(frames))
        frames += list(read_frames(manifest, record, np.arange(take), decoder))
    if not frames:
        raise ReidError(f"{manifest_path} lists no frames to run")
    h, w = frames[0].shape[:2]
    same = [f if f.shape[:2] == (h, w) else np.asarray(Image.fromarray(f).resize((w, h))) for f in frames]
    return np.stack(same), sum(r.num_frames for r in manifest.records)


def keypoint_shift(ref: np.ndarray, other: np.ndarray) -> tuple[float | None, float | None]:
    """(median pixel distance over joints confident in both, share of ref's confident joints confident in other)
    for COCO-18 keypoints float32 [N, 18, 3]; None where ref has no confident joint."""
    ref_ok, other_ok = ref[..., 2] >= CONFIDENT, other[..., 2] >= CONFIDENT
    if not ref_ok.any():
        return None, None
    both = ref_ok & other_ok
    shift = float(np.median(np.linalg.norm(ref[..., :2] - other[..., :2], axis=-1)[both])) if both.any() else None
    return shift, float(both.sum() / ref_ok.sum())


def measure(frames: np.ndarray, sizes: list[int], *, weights: str | None = None, random_weights: bool = False,
            batch_size: int = 16, device: str = "auto", max_size: int = 1333, proposals: int = 1000,
            repeats: int = 3) -> list[dict[str, Any]]:
    """One row per min size: seconds per frame (median of `repeats` passes over `frames` uint8 [N, H, W, 3]) and,
    with real weights, the keypoints' shift from the first size's (`keypoint_shift`)."""
    from reid.pose.keypoint_rcnn import KeypointRCNNEstimator

    rows: list[dict[str, Any]] = []
    reference = None
    for size in sizes:
        est = KeypointRCNNEstimator(weights, random_weights, batch_size, device, size, max_size, proposals)
        est(frames[:min(len(frames), batch_size)])  # warm-up: allocator, kernels, cudnn's choices
        seconds, kps = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            kps = est(frames)  # numpy on the host: a CUDA run has finished when it returns
            seconds.append((time.perf_counter() - start) / len(frames))
        row = {"min_size": size, "input": network_input(*frames.shape[1:3], size, max_size),
               "s_per_frame": statistics.median(seconds), "runs_s_per_frame": seconds, "device": str(est.device)}
        if reference is None:
            reference = kps
        elif not random_weights:
            row["shift_px"], row["joints_kept"] = keypoint_shift(reference, kps)
        rows.append(row)
    return rows


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def report(rows: list[dict[str, Any]], total_frames: int, random_weights: bool) -> list[str]:
    first = rows[0]["s_per_frame"]
    lines = [f"{'min size':>8}  {'network input':>13}  {'ms/frame':>9}  {'frames/s':>8}  {'speed-up':>8}  "
             f"{'keypoint shift':>14}  {'joints kept':>11}"]
    for r in rows:
        shift, kept = r.get("shift_px"), r.get("joints_kept")
        size = "{}x{}".format(*r["input"])
        lines.append(f"{r['min_size']:>8}  {size:>13}  {1000 * r['s_per_frame']:>9.0f}  "
                     f"{1 / r['s_per_frame']:>8.1f}  {first / r['s_per_frame']:>7.2f}x  "
                     f"{'-' if shift is None else f'{shift:.1f} px':>14}  {'-' if kept is None else f'{kept:.0%}':>11}")
    if random_weights:
        lines.append("random weights: timing only (the keypoints of an untrained network are not compared)")
    else:
        lines.append(f"keypoint shift: median distance to min size {rows[0]['min_size']}'s keypoints, in the frames' "
                     f"pixels, over joints confident (>= {CONFIDENT}) at both; joints kept: the share of its "
                     f"confident joints still confident")
    if total_frames:
        per = ", ".join(f"{r['min_size']}: {duration(total_frames * r['s_per_frame'])}" for r in rows)
        lines.append(f"`reid pose` over the manifest's {total_frames:,} frames, one worker like this process "
                     f"(device, threads): {per}")
    return lines


def conditions(args: argparse.Namespace) -> dict[str, Any]:
    """What the numbers ran on, for the JSON file: date, CPUs, torch threads, versions, the settings timed."""
    import torch

    from reid.bench.host import host_conditions

    return {**host_conditions(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "batch_size": args.batch_size, "max_size": args.max_size, "proposals": args.proposals,
            "manifest": args.manifest}


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.min_sizes)
    if args.frames < 1 or args.repeats < 1 or args.batch_size < 1:
        raise ReidError("--frames, --repeats and --batch-size must be >= 1")
    if args.json:  # here, not after the timed passes
        storage.check_writable(storage.local_only(args.json, "--json", "bench pose", writes=True), "the JSON")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    frames, total = load_frames(args.manifest, args.frames, (args.height, args.width))
    print(f"[reid] Keypoint R-CNN on {len(frames)} frames of {frames.shape[1]}x{frames.shape[2]}, min sizes "
          f"{', '.join(map(str, sizes))}, {args.repeats} timed passes each", flush=True)
    rows = measure(frames, sizes, weights=args.weights, random_weights=args.random_weights,
                   batch_size=args.batch_size, device=args.device, max_size=args.max_size, proposals=args.proposals,
                   repeats=args.repeats)
    print("\n".join(report(rows, total, args.random_weights)))
    if args.json:
        Path(args.json).write_text(json.dumps({**conditions(args), "frames": len(frames),
                                               "frame_size": list(frames.shape[1:3]), "manifest_frames": total,
                                               "random_weights": args.random_weights, "rows": rows}, indent=2))
    return 0
