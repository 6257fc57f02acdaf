"""`reid pose` picks up where it stopped: a job over MARS is days of CPU (docs/datasets.md), and a crash, Ctrl-C
or a lost node must not send it back to the first tracklet.

The output directory holds `pose-job.json`, the settings that decide the keypoints (source, weights, sizes,
proposals); a later job with other settings is refused in one line rather than mixing two estimators' keypoints.
A tracklet is done when `keypoints/<stem>.npy` loads as float32 [num_frames, 18, 3]: the writer renames that file
into place last (`save_atomic`), after the tracklet's OpenPose JSON files, so a file cut short by a crash is never
taken for a finished one. A rerun skips the done tracklets (writing their JSON files from the .npy where an earlier
job ran with --no-json) and estimates the rest, the failed ones included.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from reid.data.pack_ledger import settings_difference
from reid.data.records import TrackletRecord
from reid.errors import ReidError
from reid.pose.base import KeypointError, check_keypoints
from reid.pose.openpose_json import SUFFIX, write_openpose_json

SETTINGS_FILE = "pose-job.json"
# PoseJobOptions fields that change the keypoints (batch size, device and threads do not, beyond float rounding)
SETTING_KEYS = ("source", "weights", "random_weights", "min_size", "max_size", "proposals", "json_root")


def job_settings(options: Any) -> dict[str, Any]:
    """The PoseJobOptions fields of SETTING_KEYS; a weights file by its absolute path (the same file named from
    another directory is the same setting)."""
    settings = {k: getattr(options, k) for k in SETTING_KEYS}
    if settings["weights"]:
        settings["weights"] = str(Path(settings["weights"]).resolve())
    return settings


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record `settings` in `out`, or refuse when `out` holds keypoints made with other ones."""
    path = out / SETTINGS_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ReidError(f"{path} cannot be read ({exc}); remove it, or choose another --out") from None
        differ = settings_difference(before, settings)
        if differ:
            raise ReidError(f"--out {out} holds keypoints of a job with other settings ({differ}); choose another "
                            "--out, or remove that folder to start over")
        return
    if any((out / "keypoints").glob("*.npy")):  # a job that recorded no settings (before 2026-12-07): unknown ones
        raise ReidError(f"--out {out} holds keypoints of a job that recorded no settings ({SETTINGS_FILE}); "
                        "choose another --out, or remove that folder to start over")
    path.write_text(json.dumps(settings, indent=2) + "\n")


def save_atomic(path: Path, kps: np.ndarray) -> None:
    """np.save into a temporary file beside `path`, then rename it into place (atomic on one file system)."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.save(f, kps)
    os.replace(tmp, path)


def done_tracklets(records: list[TrackletRecord], stems: list[str], out: Path, rel: Path,
                   write_json: bool) -> dict[int, str]:
    """row -> the .npy path relative to the dataset root, for every tracklet whose keypoints `out` already holds."""
    done: dict[int, str] = {}
    for i, (record, stem) in enumerate(zip(records, stems, strict=True)):
        npy = out / "keypoints" / f"{stem}.npy"
        if not npy.is_file():
            continue
        try:
            kps = check_keypoints(np.load(npy), record.num_frames, str(npy))
        except (OSError, EOFError, ValueError, KeypointError):  # cut short, unreadable, another length: again
            continue
        if write_json:
            frames = out / "openpose" / stem
            if len(list(frames.glob(f"*{SUFFIX}"))) != record.num_frames:
                for t, frame in enumerate(kps):
                    write_openpose_json(frames / f"{t:06d}{SUFFIX}", frame)
        done[i] = str(rel / "keypoints" / f"{stem}.npy")
    return done
