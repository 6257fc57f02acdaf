"""Keypoints stored as one .npy per tracklet (`record.keypoints`, relative to the manifest root).

This is the synthetic set's ground truth (`keypoints/<tracklet_id>.npy`, written by the generator) and also what
`reid pose` writes for real datasets, so one source serves both.
"""

from __future__ import annotations

import numpy as np

from reid.data.records import TrackletRecord
from reid.pose.base import KeypointError, KeypointSource, check_keypoints


class ManifestKeypoints(KeypointSource):
    name = "synthetic"

    def load(self, record: TrackletRecord) -> np.ndarray:
        if not record.keypoints:
            raise KeypointError(f"tracklet {record.tracklet_id} has no keypoints file (record.keypoints is empty); "
                                f"run `reid pose` on the manifest to estimate them")
        path = self.manifest.resolve(record.keypoints)
        if not path.is_file():
            raise KeypointError(f"tracklet {record.tracklet_id}: keypoints file {path} does not exist")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise KeypointError(f"tracklet {record.tracklet_id}: {path} is not a readable .npy file ({exc})") from None
        return check_keypoints(arr, record.num_frames, str(path))
