"""The keypoint-source interface: every source turns a tracklet record into float32 [num_frames, 18, 3].

Keypoints are (x, y, confidence) in pixels of the tracklet's frames, COCO-18 / OpenPose joint order
(`reid.data.pose_maps.JOINT_NAMES`); confidence 0 means "not found" (OpenPose writes 0, 0, 0 then).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from reid.data.pose_maps import NUM_JOINTS
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError


class KeypointError(ReidError):
    """Keypoints that are missing or malformed; the message names the file and what was expected."""


def check_keypoints(kps: np.ndarray, num_frames: int, where: str) -> np.ndarray:
    """Validate and return float32 [num_frames, 18, 3] with finite values."""
    arr = np.asarray(kps)
    if arr.shape != (num_frames, NUM_JOINTS, 3):
        raise KeypointError(f"{where}: expected keypoints of shape [{num_frames}, {NUM_JOINTS}, 3] "
                            f"(frames, COCO-18 joints, x/y/confidence), got {list(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise KeypointError(f"{where}: keypoints must be finite numbers")
    return arr.astype(np.float32, copy=False)


class KeypointSource(ABC):
    """Where a dataset's keypoints come from. Bound to a manifest (paths in records are relative to its root)."""

    name: str = ""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    @abstractmethod
    def load(self, record: TrackletRecord) -> np.ndarray:
        """float32 [record.num_frames, 18, 3]: (x, y, confidence) per frame and COCO-18 joint."""
