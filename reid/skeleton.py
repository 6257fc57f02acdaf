"""The COCO-18 skeleton of OpenPose: joint order, limbs in part-affinity-field order, and the 57-channel pose-map
layout. A leaf module (imports nothing from reid): the data layer renders pose maps in this layout
(`reid.data.pose_maps`) and the models read them (`reid.models.layers.part_maps`) without importing each other.

Channel layout of a pose map [.., 57, h, w] (the concatenation OpenPose's COCO model outputs):
- 0..17: one heat map per joint, in `JOINT_NAMES` order;
- 18: the background map;
- 19 + 2l, 20 + 2l: the (x, y) components of limb l's part-affinity field, limbs in `LIMBS` order (OpenPose's
  training / PAF order; the OpenPose demos' `mapIdx` numbers are these channel numbers).
"""

from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)
# OpenPose COCO-18 limbs (joint a -> joint b), in PAF channel order (CMU training code mid_1 / mid_2, 0-based)
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
    (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17),
)
NUM_JOINTS = len(JOINT_NAMES)          # 18
NUM_HEATMAPS = NUM_JOINTS + 1          # 19 (with background)
NUM_PAFS = 2 * len(LIMBS)              # 38
NUM_CHANNELS = NUM_HEATMAPS + NUM_PAFS  # 57
BACKGROUND_CHANNEL = NUM_JOINTS
HEATMAP_CHANNELS = slice(0, NUM_HEATMAPS)
PAF_CHANNELS = slice(NUM_HEATMAPS, NUM_CHANNELS)


def joint_channel(name: str) -> int:
    """Channel number of joint `name`'s heat map (= its COCO-18 index)."""
    return JOINT_NAMES.index(name)


def limb_channels(limb: int) -> tuple[int, int]:
    """(x, y) channel numbers of limb `limb`'s part-affinity field."""
    return NUM_HEATMAPS + 2 * limb, NUM_HEATMAPS + 2 * limb + 1
