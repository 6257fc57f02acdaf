"""OpenPose-layout pose maps rendered from COCO-18 keypoints, as OpenPose's own training targets are built.

Layout of the 57 channels (the concatenation OpenPose's COCO model outputs, heat maps then part-affinity fields):
- 0..17: one Gaussian map per joint, exp(-d^2 / (2 sigma^2)), set to 0 where the exponent exceeds 4.6052
  (value < 0.01), as in the CMU training code (`putGaussianMaps`);
- 18: background = max(0, 1 - max over joints);
- 19 + 2l, 20 + 2l: the (x, y) components of limb l's part-affinity field (`putVecMaps`): the unit vector from
  joint a to joint b on grid points in the limb's bounding box widened by `paf_width` (round(min - width) <= g <
  round(max + width), as OpenPose loops) whose distance to the limb's line is <= `paf_width`, 0 elsewhere. Limbs are in `LIMBS` order, which is OpenPose's training / PAF
  order (the OpenPose demos' `mapIdx` numbers are these channel numbers).

Keypoints are [T, 18, 3] (x, y, confidence) in pixels of a frame of size `in_size`; a joint is drawn when its
confidence is > `min_conf`. Maps are rendered on an (h, w) grid whose cell centres align with pixel centres
(grid = (pixel + 0.5) * scale - 0.5); `sigma` and `paf_width` are in grid cells (OpenPose: sigma 7 px at stride 8
= 0.875 cells; width 1 cell).
"""

from __future__ import annotations

import numpy as np

from reid.skeleton import (  # noqa: F401  (the skeleton lives in a leaf module; re-exported for callers)
    BACKGROUND_CHANNEL,
    HEATMAP_CHANNELS,
    JOINT_NAMES,
    LIMBS,
    NUM_CHANNELS,
    NUM_HEATMAPS,
    NUM_JOINTS,
    NUM_PAFS,
    PAF_CHANNELS,
    joint_channel,
    limb_channels,
)

SIGMA = 7.0 / 8.0
PAF_WIDTH = 1.0
_CUTOFF = 4.6052  # exp(-4.6052) = 0.01


def to_grid(kps: np.ndarray, in_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """Keypoint pixel coordinates -> grid coordinates (pixel centres aligned): float64 [..., 18, 3]."""
    g = np.array(kps, dtype=np.float64, copy=True)
    g[..., 0] = (g[..., 0] + 0.5) * out_size[1] / in_size[1] - 0.5
    g[..., 1] = (g[..., 1] + 0.5) * out_size[0] / in_size[0] - 0.5
    return g


def render_pose_maps(kps: np.ndarray, in_size: tuple[int, int], out_size: tuple[int, int], *,
                     sigma: float = SIGMA, paf_width: float = PAF_WIDTH, min_conf: float = 0.0) -> np.ndarray:
    """Pose maps of a clip.

    Args:
        kps: float [T, 18, 3] (x, y, confidence) in pixels of an `in_size` = (H, W) frame.
        out_size: (h, w) of the maps.
    Returns:
        float32 [T, 57, h, w] in the channel layout of the module docstring.
    """
    h, w = out_size
    g = to_grid(kps, in_size, out_size)
    valid = g[..., 2] > min_conf                                    # [T, 18]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)                  # [h, w]
    dx = gx[None, None] - g[..., 0, None, None]                     # [T, 18, h, w]
    dy = gy[None, None] - g[..., 1, None, None]
    expo = (dx * dx + dy * dy) / (2.0 * sigma * sigma)
    heat = np.where((expo <= _CUTOFF) & valid[..., None, None], np.exp(-expo), 0.0)
    background = np.maximum(1.0 - heat.max(axis=1, initial=0.0), 0.0)

    a_idx = np.array([a for a, _ in LIMBS])
    b_idx = np.array([b for _, b in LIMBS])
    pa, pb = g[:, a_idx, :2], g[:, b_idx, :2]                       # [T, L, 2]
    vec = pb - pa
    norm = np.linalg.norm(vec, axis=-1)                             # [T, L]
    limb_ok = valid[:, a_idx] & valid[:, b_idx] & (norm > 1e-8)
    unit = vec / np.where(norm > 1e-8, norm, 1.0)[..., None]
    lo = np.round(np.minimum(pa, pb) - paf_width)                   # bounding box, as OpenPose rounds it
    hi = np.round(np.maximum(pa, pb) + paf_width)
    rx = gx[None, None] - pa[..., 0, None, None]                    # [T, L, h, w]
    ry = gy[None, None] - pa[..., 1, None, None]
    dist = np.abs(rx * unit[..., 1, None, None] - ry * unit[..., 0, None, None])
    inside = ((gx >= lo[..., 0, None, None]) & (gx < hi[..., 0, None, None])
              & (gy >= lo[..., 1, None, None]) & (gy < hi[..., 1, None, None])
              & (dist <= paf_width) & limb_ok[..., None, None])
    paf = np.where(inside[:, :, None], unit[:, :, :, None, None], 0.0)  # [T, L, 2, h, w]

    t = kps.shape[0]
    out = np.concatenate([heat, background[:, None], paf.reshape(t, NUM_PAFS, h, w)], axis=1)
    return out.astype(np.float32)
