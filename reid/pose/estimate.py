"""`reid pose`: keypoints for every tracklet of a manifest, as a Ray Data batch-inference job.

One row per tracklet goes through `map_batches` with an actor pool: each actor loads the estimator once (Keypoint
R-CNN, or an OpenPose JSON reader to convert existing files), decodes the tracklet's frames, and writes under the
output directory `DIR` (which must lie inside the dataset root, since manifest paths are relative to it):

    DIR/keypoints/<tracklet>.npy                      float32 [num_frames, 18, 3] (x, y, confidence), COCO-18
    DIR/openpose/<tracklet>/<frame:06d>_keypoints.json  OpenPose JSON per frame (unless write_json=False)
    DIR/manifest.parquet                              the input records with `keypoints` pointing at the .npy
    DIR/pose-job.json                                 the settings; a rerun skips the tracklets done (resume.py)

`workers=0` runs the same per-tracklet code in this process (no Ray). Ray is imported only in this module.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid import node_paths
from reid.data.decode import DecodeError, Decoder, read_frames
from reid.data.records import Manifest, TrackletRecord, read_manifest, write_manifest
from reid.errors import ReidError
from reid.pose.base import KeypointError, check_keypoints
from reid.pose.openpose_json import SUFFIX, OpenPoseJsonKeypoints, write_openpose_json
from reid.pose.resume import check_settings, done_tracklets, job_settings, save_atomic
from reid.progress import bar as progress_bar
from reid.ray_runtime import init_ray, quiet_teardown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoseJobOptions:
    source: str = "keypoint-rcnn"          # or "openpose-json": convert existing OpenPose files
    weights: str | None = None
    random_weights: bool = False
    batch_size: int = 16                   # frames per Keypoint R-CNN forward pass
    device: str = "auto"
    min_size: int = 800                    # torchvision's resize of the shorter side
    max_size: int = 1333
    proposals: int = 1000                  # region proposals per image (torchvision's default)
    json_root: str | None = None           # openpose-json: where the input files are (see openpose_json.py)
    write_json: bool = True
    threads: int = 1                       # torch CPU threads per worker (0: torch's default, all cores)


@dataclass
class PoseJobResult:
    manifest: Path
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def output_stems(records: list[TrackletRecord]) -> list[str]:
    """File-name-safe, unique stems for the tracklets' output files."""
    seen: dict[str, int] = {}
    out = []
    for r in records:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", r.tracklet_id) or "tracklet"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}-{n}")
    return out


def relative_out_dir(manifest: Manifest, out_dir: Path) -> Path:
    root = manifest.root.resolve()
    out = out_dir.resolve()
    if out != root and root not in out.parents:
        raise ReidError(f"--out {out_dir} must lie inside the dataset root {root}: manifest paths are relative to "
                        f"it (e.g. --out {root / 'pose'})")
    return out.relative_to(root)


class TrackletKeypointWriter:
    """The per-tracklet work (the Ray Data UDF): batch {"row": int [N]} -> {"row", "keypoints", "error"}."""

    def __init__(self, manifest_path: str, out_dir: str, stems: list[str], options: PoseJobOptions) -> None:
        quiet_teardown()  # a SIGTERM (the job stopped) inside a __del__: no traceback on the driver's console
        if options.threads:
            torch.set_num_threads(options.threads)
        self.manifest = read_manifest(manifest_path)
        if not self.manifest.remote:  # a node an autoscaler added after the driver's check (reid/node_paths.py)
            node_paths.check_here({"data.root": str(self.manifest.root)}, "a pose actor")
        self.rel = relative_out_dir(self.manifest, Path(out_dir))
        self.out = Path(out_dir)
        self.stems = stems
        self.options = options
        self.decoder = Decoder()
        if options.source == "keypoint-rcnn":
            from reid.pose.keypoint_rcnn import KeypointRCNNEstimator

            self.estimator = KeypointRCNNEstimator(options.weights, options.random_weights, options.batch_size,
                                                   options.device, options.min_size, options.max_size,
                                                   options.proposals)
        elif options.source == "openpose-json":
            self.reader = OpenPoseJsonKeypoints(self.manifest, options.json_root)
        else:
            raise ReidError(f"unknown pose job source '{options.source}'; expected keypoint-rcnn or openpose-json")

    def keypoints(self, record: TrackletRecord) -> np.ndarray:
        if self.options.source == "openpose-json":
            return self.reader.load(record)
        frames = read_frames(self.manifest, record, np.arange(record.num_frames), self.decoder)
        return check_keypoints(self.estimator(frames), record.num_frames, f"tracklet {record.tracklet_id}")

    def write(self, row: int) -> str:
        """Estimate and write one tracklet; returns the .npy path relative to the dataset root."""
        record, stem = self.manifest.records[row], self.stems[row]
        kps = self.keypoints(record)
        if self.options.write_json:
            for i, frame in enumerate(kps):
                write_openpose_json(self.out / "openpose" / stem / f"{i:06d}{SUFFIX}", frame)
        npy = self.out / "keypoints" / f"{stem}.npy"
        npy.parent.mkdir(parents=True, exist_ok=True)
        save_atomic(npy, kps)  # last: the tracklet counts as done for a rerun only once this file is whole
        return str(self.rel / "keypoints" / f"{stem}.npy")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, paths, errors = [], [], []
        for row in batch["row"]:
            try:
                path, err = self.write(int(row)), ""
            except (DecodeError, KeypointError) as exc:  # one unreadable tracklet must not sink the job
                path, err = "", str(exc)
            rows.append(int(row))
            paths.append(path)
            errors.append(err)
        return {"row": np.array(rows, np.int64), "keypoints": np.array(paths, dtype=object),
                "error": np.array(errors, dtype=object)}


def _run_local(manifest_path: Path, out_dir: Path, stems: list[str], options: PoseJobOptions, todo: list[int]):
    writer = TrackletKeypointWriter(str(manifest_path), str(out_dir), stems, options)
    for i in todo:
        yield {k: v[0] for k, v in writer({"row": np.array([i])}).items()}


def tracklet_rows(rows: list[int]):
    """A Ray Dataset of rows {"row": i} for the manifest rows `rows`, one row per block. Ray Data hands a map task's
    output on when the task ends, so with several tracklets per block the progress bar moved only when a whole block
    was done: `reid pose` on the tiny synthetic set (55 tracklets in 4 blocks, Keypoint R-CNN on CPU, about 75 s a
    tracklet) showed 0/55 for 10 minutes while 8 tracklets were written (now a row arrives one task after its
    tracklet is done). A task per tracklet costs milliseconds against seconds."""
    import ray

    return ray.data.from_items([{"row": i} for i in rows], override_num_blocks=max(1, len(rows)))


def _run_ray(manifest_path: Path, out_dir: Path, stems: list[str], options: PoseJobOptions, todo: list[int],
             workers: int, cpus_per_worker: float, gpus_per_worker: float, address: str | None,
             data_root: Path | str):
    import ray

    started = not ray.is_initialized()
    if started:  # no Ray Train here, so no dashboard (reid.ray_runtime)
        init_ray(None, address=address, dashboard=False)
    try:
        # the actors read the videos and write the keypoints on their own nodes (reid/node_paths.py)
        paths = {} if isinstance(data_root, str) else {"data.root": str(data_root.resolve())}  # str: a URI
        if not any(manifest_path.is_relative_to(p) for p in paths.values()):
            paths["manifest"] = str(manifest_path)
        node_paths.finish(node_paths.start(paths, str(out_dir), storage_key="--out", storage_advice=(
            "the pose actors write the keypoint files there: choose a directory every node sees, such as "
            "/shared/data/NAME/pose")), workers="its pose actors")
        ds = tracklet_rows(todo).map_batches(
            TrackletKeypointWriter, fn_constructor_args=(str(manifest_path), str(out_dir), stems, options),
            batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None)
        yield from ds.iter_rows()
    finally:
        if started:
            ray.shutdown()


def estimate_keypoints(manifest_path: str | Path, out_dir: str | Path, options: PoseJobOptions, *,
                       workers: int = 1, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
                       address: str | None = None) -> PoseJobResult:
    """Write the keypoint files of every tracklet and the updated manifest (see the module docstring)."""
    manifest = read_manifest(manifest_path)
    out = Path(out_dir)
    rel = relative_out_dir(manifest, out)  # refuses an --out outside the dataset root
    out_manifest = out / "manifest.parquet"
    given = Path(manifest_path)
    if out_manifest.resolve() == (given / "manifest.parquet" if given.is_dir() else given).resolve():
        raise ReidError(f"--out {out} would overwrite the input manifest; choose a subdirectory such as "
                        f"{manifest.root / 'pose'}")
    if options.source == "keypoint-rcnn":  # fail here with a clear message, not inside a Ray actor
        from reid.pose.keypoint_rcnn import resolve_weights

        if options.weights is not None and options.random_weights:
            raise ReidError("--weights and --random-weights exclude each other")
        if not options.random_weights:
            resolve_weights(options.weights)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, job_settings(options))
    stems = output_stems(manifest.records)
    paths = done_tracklets(manifest.records, stems, out, rel, options.write_json)
    todo = [i for i in range(len(stems)) if i not in paths]
    if paths:
        print(f"[reid] pose: {len(paths)} of {len(stems)} tracklets already done in {out} (an earlier job with the "
              f"same settings); estimating the other {len(todo)}", flush=True)
    rows: Any = []
    # absolute paths: Ray workers need not share this process's working directory
    src, dst = Path(manifest_path).resolve(), out.resolve()
    if todo and workers == 0:
        rows = _run_local(src, dst, stems, options, todo)
    elif todo:
        rows = _run_ray(src, dst, stems, options, todo, workers, cpus_per_worker, gpus_per_worker, address,
                        manifest.root)
    result = PoseJobResult(manifest=out_manifest)
    for row in progress_bar(rows, total=len(stems), initial=len(paths), desc="pose", unit="tracklets"):
        i = int(row["row"])
        if row["error"]:
            result.failed.append((manifest.records[i].tracklet_id, str(row["error"])))
        else:
            paths[i] = str(row["keypoints"])
    records = [replace(r, keypoints=paths.get(i)) for i, r in enumerate(manifest.records)]
    meta = {**manifest.meta, "keypoints_source": options.source}
    if options.source == "keypoint-rcnn":
        meta["keypoints_weights"] = "random" if options.random_weights else (options.weights or "torchvision cache")
    write_manifest(Manifest(records=records, root=manifest.root, dataset=manifest.dataset,
                            attributes=manifest.attributes, meta=meta), out_manifest)
    result.written = len(paths)
    return result
