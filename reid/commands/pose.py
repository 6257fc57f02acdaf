"""`reid pose`: estimate (or convert) keypoints for every tracklet of a manifest."""

from __future__ import annotations

import argparse

from reid.errors import ReidError

DESCRIPTION = """Keypoints for posetap's pose maps, for datasets without ground-truth keypoints.

Runs torchvision's Keypoint R-CNN (COCO-17 mapped to COCO-18, neck = mid-shoulders) over every frame as a Ray Data
batch-inference job, and writes under --out (a folder inside the dataset root):
  keypoints/<tracklet>.npy                         float32 [frames, 18, 3] (x, y, confidence)
  openpose/<tracklet>/<frame>_keypoints.json       OpenPose JSON per frame (unless --no-json)
  manifest.parquet                                 the records, with `keypoints` pointing at the .npy files
  pose-job.json                                    the settings that decide the keypoints
Train on the new manifest with data.manifest=<out>/manifest.parquet. The same command again (after Ctrl-C, a
crash, a lost node) skips the tracklets already done; other settings for the same --out are refused.
Cost: `reid bench pose` (about 5.7 s a 256x128 frame on one CPU core at the default --min-size; docs/datasets.md).

Weights: --weights FILE, else the torchvision cache ($TORCH_HOME/hub/checkpoints/
keypointrcnn_resnet50_fpn_coco-fc266e95.pth); nothing is downloaded. --random-weights is for tests only.
--from-openpose DIR converts existing OpenPose JSON files (DIR mirrors the frame files) instead of estimating.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="input manifest (a .parquet file or its directory)")
    parser.add_argument("--out", required=True, help="output folder, inside the dataset root")
    parser.add_argument("--weights", default=None, help="Keypoint R-CNN state dict (torchvision COCO weights)")
    parser.add_argument("--random-weights", action="store_true", help="untrained network (tests only)")
    parser.add_argument("--from-openpose", default=None, metavar="DIR",
                        help="read OpenPose JSON files under DIR (relative to the dataset root) instead")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per forward pass (default 16)")
    parser.add_argument("--workers", type=int, default=1, help="Ray actors (0 = run in this process)")
    parser.add_argument("--cpus-per-worker", type=float, default=None,
                        help="CPUs of each actor, also its torch threads (fractions allowed; default 1); with "
                             "--workers 0 this process's torch threads (default: torch's, all cores)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="e.g. 1, or 0.5 to share a GPU")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: CUDA when the actor has a GPU (default)")
    parser.add_argument("--min-size", type=int, default=800, help="resize of the shorter side (torchvision: 800)")
    parser.add_argument("--max-size", type=int, default=1333, help="cap of the longer side (torchvision: 1333)")
    parser.add_argument("--proposals", type=int, default=1000,
                        help="region proposals per frame (torchvision: 1000; a crop shows one person)")
    parser.add_argument("--no-json", action="store_true", help="write only the .npy files")
    parser.add_argument("--address", default=None, help="Ray address (default: start a local cluster)")


def run(args: argparse.Namespace) -> int:
    from reid import storage
    from reid.pose.estimate import PoseJobOptions, estimate_keypoints

    storage.local_only(args.manifest, "--manifest", "pose", writes=False)
    storage.local_only(args.out, "--out", "pose", writes=True)
    for name in ("batch_size", "min_size", "max_size", "proposals"):
        if getattr(args, name) < 1:
            raise ReidError(f"--{name.replace('_', '-')} must be a positive integer")
    if args.workers < 0:
        raise ReidError("--workers must be >= 0 (0 = run in this process)")
    cpus = args.cpus_per_worker
    if cpus is not None and cpus <= 0:
        raise ReidError("--cpus-per-worker must be > 0")
    # an actor's torch threads follow its CPUs; this process (--workers 0) keeps torch's own unless told
    threads = max(1, round(cpus)) if cpus is not None else (0 if args.workers == 0 else 1)
    options = PoseJobOptions(
        source="openpose-json" if args.from_openpose else "keypoint-rcnn", weights=args.weights,
        random_weights=args.random_weights, batch_size=args.batch_size, device=args.device,
        min_size=args.min_size, max_size=args.max_size, proposals=args.proposals, json_root=args.from_openpose,
        write_json=not args.no_json, threads=threads)
    result = estimate_keypoints(args.manifest, args.out, options, workers=args.workers,
                                cpus_per_worker=cpus if cpus is not None else 1.0, gpus_per_worker=args.gpus_per_worker,
                                address=args.address)
    print(f"keypoints written for {result.written} tracklets; manifest: {result.manifest}")
    if result.failed:
        shown = "; ".join(f"{tid}: {msg}" for tid, msg in result.failed[:3])
        raise ReidError(f"{len(result.failed)} tracklets failed (their records have no keypoints): {shown}")
    return 0
