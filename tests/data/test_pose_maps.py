import math

import numpy as np
import pytest

from reid.data.pose_maps import (
    BACKGROUND_CHANNEL,
    JOINT_NAMES,
    LIMBS,
    NUM_CHANNELS,
    joint_channel,
    limb_channels,
    render_pose_maps,
)


def naive_render(kps, in_size, out_size, sigma, width):
    """Loops written from OpenPose's training-label code (putGaussianMaps / putVecMaps), one person."""
    h, w = out_size
    t = kps.shape[0]
    out = np.zeros((t, 57, h, w))
    for f in range(t):
        grid = [((x + 0.5) * w / in_size[1] - 0.5, (y + 0.5) * h / in_size[0] - 0.5, c) for x, y, c in kps[f]]
        for j, (jx, jy, c) in enumerate(grid):
            if c <= 0:
                continue
            for gy in range(h):
                for gx in range(w):
                    e = ((gx - jx) ** 2 + (gy - jy) ** 2) / 2 / sigma / sigma
                    if e <= 4.6052:
                        out[f, j, gy, gx] = math.exp(-e)
        for gy in range(h):
            for gx in range(w):
                out[f, 18, gy, gx] = max(1 - max(out[f, j, gy, gx] for j in range(18)), 0)
        for li, (a, b) in enumerate(LIMBS):
            ax, ay, ca = grid[a]
            bx, by, cb = grid[b]
            if ca <= 0 or cb <= 0:
                continue
            norm = math.hypot(bx - ax, by - ay)
            if norm < 1e-8:
                continue
            vx, vy = (bx - ax) / norm, (by - ay) / norm
            for gy in range(round(min(ay, by) - width), round(max(ay, by) + width)):
                for gx in range(round(min(ax, bx) - width), round(max(ax, bx) + width)):
                    if not (0 <= gy < h and 0 <= gx < w):
                        continue
                    if abs((gx - ax) * vy - (gy - ay) * vx) <= width:
                        out[f, 19 + 2 * li, gy, gx] = vx
                        out[f, 20 + 2 * li, gy, gx] = vy
    return out


def random_keypoints(t, in_size, seed=0):
    rng = np.random.default_rng(seed)
    kps = np.zeros((t, 18, 3), dtype=np.float32)
    kps[..., 0] = rng.uniform(-4, in_size[1] + 4, (t, 18))
    kps[..., 1] = rng.uniform(-4, in_size[0] + 4, (t, 18))
    kps[..., 2] = (rng.random((t, 18)) > 0.2).astype(np.float32)
    return kps


@pytest.mark.parametrize("sigma,width", [(7 / 8, 1.0), (1.5, 2.0)])
def test_matches_naive_renderer(sigma, width):
    kps = random_keypoints(2, (64, 32))
    fast = render_pose_maps(kps, (64, 32), (16, 8), sigma=sigma, paf_width=width)
    slow = naive_render(kps, (64, 32), (16, 8), sigma, width)
    assert fast.shape == (2, NUM_CHANNELS, 16, 8) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, atol=1e-6)
    assert np.abs(fast[:, 19:]).max() > 0.5  # some limb fields were drawn


def test_constants_and_properties():
    assert len(JOINT_NAMES) == 18 and len(LIMBS) == 19 and NUM_CHANNELS == 57
    assert BACKGROUND_CHANNEL == 18 and limb_channels(0) == (19, 20) and limb_channels(18) == (55, 56)
    assert LIMBS[6] == (joint_channel("neck"), joint_channel("right_shoulder"))  # OpenPose mapIdx 31, 32 - 19
    # one joint at a pixel centre: the peak is 1 there, background 0
    kps = np.zeros((1, 18, 3), dtype=np.float32)
    kps[0, 0] = (12.0, 20.0, 1.0)  # nose; at scale 1 the grid equals the pixel grid
    maps = render_pose_maps(kps, (32, 24), (32, 24))
    assert maps[0, 0, 20, 12] == pytest.approx(1.0) and maps[0, 18, 20, 12] == pytest.approx(0.0)
    assert maps[0, 1].max() == 0 and maps[0, 19:].max() == 0  # invisible joints, no limbs
    # a horizontal limb neck -> right shoulder: field (1, 0) on the segment
    kps[0, 1] = (2.0, 5.0, 1.0)
    kps[0, 2] = (10.0, 5.0, 1.0)
    maps = render_pose_maps(kps, (32, 24), (32, 24))
    cx, cy = limb_channels(6)
    assert maps[0, cx, 5, 6] == 1.0 and maps[0, cy, 5, 6] == 0.0 and maps[0, cx, 9, 6] == 0.0
