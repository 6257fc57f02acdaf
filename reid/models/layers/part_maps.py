"""Composite body-part maps from OpenPose-layout pose maps (Jones & Rambhatla, BMVC 2019, section 3.2, eqs. 2-5).

Channel layout of `pose_maps`: the one `reid.data.pose_maps` renders (OpenPose COCO-18, `reid.skeleton`):
channels 0..17 are the joint heat maps in COCO-18 order, 18 is the background map, and channels 19 + 2l,
20 + 2l are the x and y components of the part-affinity field of limb l of `reid.skeleton.LIMBS` (OpenPose's PAF
order), 57 in all.

The sets S_u, S_m, S_l of section 3.2, as written:
- upper (head): eyes, ears, nose, neck + limbs R-eye-R-ear, L-eye-L-ear, L-eye-nose, R-eye-nose, nose-neck;
- middle: shoulders, elbows, wrists + limbs R-shoulder-R-elbow, R-elbow-R-wrist, neck-R-hip, L-shoulder-L-elbow,
  L-elbow-L-wrist, neck-L-hip;
- lower: hips, knees, ankles + limbs R-hip-R-knee, R-knee-R-ankle, L-hip-L-knee, L-knee-L-ankle.
Each limb contributes both of its PAF channels. The paper names no set for the neck-shoulder and ear-shoulder limbs
nor the background map, so they are in none.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from reid.skeleton import JOINT_NAMES, LIMBS, NUM_CHANNELS, NUM_HEATMAPS

NUM_JOINT_MAPS = NUM_HEATMAPS  # 18 joints + background
NUM_POSE_CHANNELS = NUM_CHANNELS  # 57
PART_NAMES = ("upper", "middle", "lower")

_J = {name: i for i, name in enumerate(JOINT_NAMES)}
PART_JOINTS: dict[str, tuple[str, ...]] = {
    "upper": ("right_eye", "left_eye", "right_ear", "left_ear", "nose", "neck"),
    "middle": ("right_elbow", "left_elbow", "right_shoulder", "left_shoulder", "right_wrist", "left_wrist"),
    "lower": ("right_hip", "left_hip", "right_knee", "left_knee", "right_ankle", "left_ankle"),
}
PART_LIMBS: dict[str, tuple[tuple[str, str], ...]] = {
    "upper": (("right_eye", "right_ear"), ("left_eye", "left_ear"), ("left_eye", "nose"), ("right_eye", "nose"),
              ("nose", "neck")),
    "middle": (("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("neck", "right_hip"),
               ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("neck", "left_hip")),
    "lower": (("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_hip", "left_knee"),
              ("left_knee", "left_ankle")),
}


def limb_index(a: str, b: str, limbs: tuple[tuple[int, int], ...] = LIMBS) -> int:
    """Position of the (unordered) limb a-b in the limb list."""
    pair = {_J[a], _J[b]}
    for i, limb in enumerate(limbs):
        if set(limb) == pair:
            return i
    raise ValueError(f"limb {a}-{b} is not in the limb list")


def part_channels(part: str, limbs: tuple[tuple[int, int], ...] = LIMBS) -> list[int]:
    """Indices into the 57 pose channels of the set S_part (joint maps, then both PAF channels of each limb)."""
    chans = sorted(_J[j] for j in PART_JOINTS[part])
    for a, b in PART_LIMBS[part]:
        li = limb_index(a, b, limbs)
        chans += [NUM_JOINT_MAPS + 2 * li, NUM_JOINT_MAPS + 2 * li + 1]
    return chans


def part_average_matrix(limbs: tuple[tuple[int, int], ...] = LIMBS) -> torch.Tensor:
    """A [3, 57] with A[r, k] = 1 / |S_r| for k in S_r: eq. 2 as one matrix product."""
    mat = torch.zeros(len(PART_NAMES), NUM_POSE_CHANNELS)
    for r, part in enumerate(PART_NAMES):
        chans = part_channels(part, limbs)
        mat[r, chans] = 1.0 / len(chans)
    return mat


def spatial_softmax(x: torch.Tensor) -> torch.Tensor:
    """Eq. 3: softmax over the h x w locations of each map. x: [N, K, h, w] -> [N, K, h, w], each map sums to 1."""
    n, k, h, w = x.shape
    return torch.softmax(x.float().flatten(2), dim=2).view(n, k, h, w).to(x.dtype)


def part_pooled_features(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eqs. 4-5 up to the constant h*w: sum_{k,n} rbar[k, n] f[:, k, n] per part.

    features: [N, C, h, w]; masks: [N, K, h, w] (spatial softmax output) -> [N, K, C]. Eq. 5's `avgpool` of the
    masked map is this divided by h*w; keeping the weighted sum makes a uniform mask give back the global average
    feature, so the four blocks of eq. 6 share one scale (see `CompositePartMaps.part_pool`).
    """
    return torch.einsum("nkhw,nchw->nkc", masks.to(features.dtype), features)


class CompositePartMaps(nn.Module):
    """pose maps [N, 57, h0, w0] -> spatial part masks rbar [N, 3, h, w] (eqs. 2-3), at the feature-map size.

    Args:
        paf: "signed" averages the PAF components as eq. 2 writes; "abs" averages their absolute values. The sign
            of a PAF depends only on which end OpenPose calls the limb's start, so with "signed" an upright head's
            nose-neck and nose-eye fields pull the head map down; "abs" removes that convention.
        temperature: eq. 3 is softmax(r / temperature); 1.0 is eq. 3 as written. The paper fine-tunes OpenPose, so
            its maps can sharpen; ours are rendered and frozen, and composite values lie in [0, 1], for which a
            temperature of 1 gives an almost flat mask.
        part_pool: "sum" (weighted sum, see `part_pooled_features`) or "mean" (eq. 5 as written: avgpool, i.e. the
            weighted sum divided by h*w).
    """

    def __init__(self, paf: Literal["signed", "abs"] = "signed", temperature: float = 1.0,
                 part_pool: Literal["sum", "mean"] = "sum") -> None:
        super().__init__()
        self.register_buffer("average", part_average_matrix(), persistent=False)
        self.paf = paf
        self.temperature = temperature
        self.part_pool = part_pool

    def composite(self, pose_maps: torch.Tensor) -> torch.Tensor:
        """Eq. 2: [N, 57, h, w] -> r_p [N, 3, h, w] (mean of each part's channels)."""
        if self.paf == "abs":
            pose_maps = torch.cat([pose_maps[:, :NUM_JOINT_MAPS], pose_maps[:, NUM_JOINT_MAPS:].abs()], dim=1)
        return torch.einsum("rk,nkhw->nrhw", self.average.to(pose_maps.dtype), pose_maps)

    def forward(self, pose_maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """pose_maps [N, 57, h0, w0] -> masks [N, 3, h, w] with (h, w) = `size`, each mask summing to 1."""
        if pose_maps.shape[-2:] != torch.Size(size):
            # antialias: the maps are usually shrunk (H/8 -> H/16 or H/32); plain bilinear would alias thin limbs
            pose_maps = F.interpolate(pose_maps.float(), size=size, mode="bilinear", align_corners=False,
                                      antialias=True)
        return spatial_softmax(self.composite(pose_maps.float()) / self.temperature)

    def pool(self, features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """features [N, C, h, w], masks [N, 3, h, w] -> pooled part features [N, 3, C] (eqs. 4-5)."""
        pooled = part_pooled_features(features, masks)
        if self.part_pool == "mean":
            pooled = pooled / (features.shape[-2] * features.shape[-1])
        return pooled
