"""Keypoint sources behind one interface, `KeypointSource.load(record) -> float32 [num_frames, 18, 3]`.

- `synthetic` (`ManifestKeypoints`): one .npy per tracklet named by `record.keypoints`: the synthetic set's ground
  truth, and what `reid pose` writes;
- `openpose-json` (`OpenPoseJsonKeypoints`): OpenPose `--write_json` files, one per frame;
- `keypoint-rcnn` (`KeypointRCNNSource`): torchvision's Keypoint R-CNN run on the frames (COCO-17 -> COCO-18).
  `reid.pose.estimate` runs it over a whole manifest as a Ray Data batch-inference job (`reid pose`).
The data pipeline renders the OpenPose-layout maps from these keypoints (`reid.data.pose_maps`).
"""

from __future__ import annotations

from typing import Any

from reid.data.records import Manifest
from reid.errors import ReidError
from reid.pose.base import KeypointError, KeypointSource, check_keypoints
from reid.pose.openpose_json import OpenPoseJsonKeypoints
from reid.pose.synthetic import ManifestKeypoints

SOURCES = ("synthetic", "openpose-json", "keypoint-rcnn")


def get_source(kind: str, manifest: Manifest, **options: Any) -> KeypointSource:
    """A keypoint source by name; `options` go to its constructor (json_root; weights, random_weights, ...)."""
    if kind == "synthetic":
        return ManifestKeypoints(manifest)
    if kind == "openpose-json":
        return OpenPoseJsonKeypoints(manifest, **options)
    if kind == "keypoint-rcnn":
        from reid.pose.keypoint_rcnn import KeypointRCNNEstimator, KeypointRCNNSource

        return KeypointRCNNSource(manifest, KeypointRCNNEstimator(**options))
    raise ReidError(f"unknown keypoint source '{kind}'; expected one of {', '.join(SOURCES)}")


__all__ = ["SOURCES", "KeypointError", "KeypointSource", "ManifestKeypoints", "OpenPoseJsonKeypoints",
           "check_keypoints", "get_source"]
