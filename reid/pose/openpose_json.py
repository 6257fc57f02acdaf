"""Keypoint files in OpenPose's JSON format (`--write_json`): one file per frame,
`{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}`.

Accepted joint layouts: COCO-18 (54 numbers, the layout this project uses) and BODY_25 (75 numbers, OpenPose's
default model since 1.3), which is mapped to COCO-18 (its joints 0-7 and 9-18 are COCO-18's 0-17; 8 = mid-hip and
19-24 = feet have no COCO-18 counterpart). When a frame holds several people, the one with the largest summed
confidence is taken (re-ID crops are centred on one person); a frame with nobody gives zeros.

Where a record's files are:
- `record.keypoints` names a directory (relative to the dataset root) with one JSON file per frame, ordered by the
  frame number in the file name (what `reid pose` writes: `<frame:06d>_keypoints.json`);
- otherwise, for records made of frame files, `json_root` (relative to the dataset root) mirrors the frame files:
  `<json_root>/<frame path without extension>_keypoints.json`, or OpenPose's flat output
  `<json_root>/<frame file stem>_keypoints.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from reid.data.datasets.common import frame_number
from reid.data.pose_maps import NUM_JOINTS
from reid.data.records import Manifest, TrackletRecord
from reid.pose.base import KeypointError, KeypointSource, check_keypoints

BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
SUFFIX = "_keypoints.json"


def parse_openpose_json(data: dict, where: str) -> np.ndarray:
    """One frame's OpenPose JSON (already parsed) -> float32 [18, 3] of the most confident person."""
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise KeypointError(f"{where}: not an OpenPose keypoint file (expected a 'people' list)")
    best, best_score = np.zeros((NUM_JOINTS, 3), np.float32), -1.0
    for person in people:
        flat = np.asarray(person.get("pose_keypoints_2d", []) if isinstance(person, dict) else [], np.float64)
        if flat.size == NUM_JOINTS * 3:
            kps = flat.reshape(NUM_JOINTS, 3)
        elif flat.size == 25 * 3:
            kps = flat.reshape(25, 3)[list(BODY25_TO_COCO18)]
        else:
            raise KeypointError(f"{where}: pose_keypoints_2d has {flat.size} numbers; expected 54 (COCO-18) or "
                                f"75 (BODY_25)")
        score = float(kps[:, 2].sum())
        if score > best_score:
            best, best_score = kps.astype(np.float32), score
    return best


def read_openpose_json(path: Path) -> np.ndarray:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise KeypointError(f"cannot read OpenPose keypoint file {path}: {exc}") from None
    return parse_openpose_json(data, str(path))


def write_openpose_json(path: Path, kps: np.ndarray) -> None:
    """Write one frame's COCO-18 keypoints [18, 3] as OpenPose does; all-zero confidence = nobody found."""
    people = []
    if float(np.asarray(kps)[:, 2].max(initial=0.0)) > 0:
        people.append({"person_id": [-1], "pose_keypoints_2d": [round(float(v), 3) for v in np.ravel(kps)]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1.3, "people": people}))


class OpenPoseJsonKeypoints(KeypointSource):
    name = "openpose-json"

    def __init__(self, manifest: Manifest, json_root: str | None = None) -> None:
        super().__init__(manifest)
        self.json_root = json_root

    def files(self, record: TrackletRecord) -> list[Path]:
        if record.keypoints:
            folder = self.manifest.resolve(record.keypoints)
            if not folder.is_dir():
                raise KeypointError(f"tracklet {record.tracklet_id}: {folder} is not a directory of OpenPose "
                                    f"JSON files (one per frame)")
            files = sorted((p for p in folder.iterdir() if p.suffix == ".json"),
                           key=lambda p: (frame_number(p.name.removesuffix(SUFFIX)), p.name))
            if len(files) != record.num_frames:
                raise KeypointError(f"tracklet {record.tracklet_id}: {folder} holds {len(files)} JSON files, the "
                                    f"tracklet has {record.num_frames} frames")
            return files
        if self.json_root is None or not record.frames:
            raise KeypointError(f"tracklet {record.tracklet_id}: no OpenPose JSON location (set record.keypoints "
                                f"to a directory of per-frame files, or give json_root for frame-file datasets)")
        out = []
        for frame in record.frames:
            rel = Path(frame)
            mirrored = self.manifest.resolve(str(Path(self.json_root) / rel.with_name(rel.stem + SUFFIX)))
            flat = self.manifest.resolve(str(Path(self.json_root) / (rel.stem + SUFFIX)))
            if not mirrored.is_file() and not flat.is_file():
                raise KeypointError(f"tracklet {record.tracklet_id}: no OpenPose file for frame {frame} "
                                    f"(looked for {mirrored} and {flat})")
            out.append(mirrored if mirrored.is_file() else flat)
        return out

    def load(self, record: TrackletRecord) -> np.ndarray:
        kps = np.stack([read_openpose_json(p) for p in self.files(record)])
        return check_keypoints(kps, record.num_frames, f"tracklet {record.tracklet_id}")
