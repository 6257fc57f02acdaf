"""Dense Lucas-Kanade optical flow between consecutive frames (the 2 motion channels of RCN, fcnta and astpn).

For frames I1 -> I2 (grayscale, float), with spatial gradients Ix, Iy of the mean frame (I1 + I2) / 2 (central
differences) and the temporal difference It = I2 - I1, the flow (u, v) at each pixel minimises
sum_w w(q) (Ix u + Iy v + It)^2 over a window w around the pixel (Lucas & Kanade 1981), i.e. solves

    [ S_xx  S_xy ] [u]     [ S_xt ]
    [ S_xy  S_yy ] [v] = - [ S_yt ],      S_ab = sum_w w(q) a(q) b(q)

in closed form: u = (S_xy S_yt - S_yy S_xt) / det, v = (S_xy S_xt - S_xx S_yt) / det, det = S_xx S_yy - S_xy^2.
Pixels whose smaller eigenvalue of the 2x2 matrix is below `min_eig` (no texture: the aperture problem) get 0.
The window sums are separable correlations with a box or Gaussian kernel, zero outside the image, so the whole clip
is solved at once with numpy / scipy.

RCN computed the flow sequentially over each sequence with MATLAB's `vision.OpticalFlow('Lucas-Kanade')`, the first
frame having no predecessor; here flow[t] is the motion from frame t-1 to frame t and flow[0] = 0, on the
already-cropped and flipped clip (so a flip mirrors the motion too). The network input is the flow divided by a
displacement bound and clipped to [-1, 1] (`normalize_flow`).
"""

from __future__ import annotations

import numpy as np

FLOW_BOUND = 4.0  # pixels of displacement mapped to +-1 in the network input


def gray(frames: np.ndarray, *, chw: bool = False) -> np.ndarray:
    """uint8 RGB [..., H, W, 3] (or [..., 3, H, W] with chw) -> float32 luma [..., H, W] (BT.601 weights)."""
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if chw:
        return np.tensordot(frames.astype(np.float32), w, axes=([-3], [0]))
    return frames.astype(np.float32) @ w


def window_kernel(window: str, radius: int, sigma: float | None = None) -> np.ndarray:
    """1-D window weights of length 2 * radius + 1: 'box' (ones) or 'gaussian' (sigma default radius / 2)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    if window == "box":
        return np.ones_like(x)
    if window == "gaussian":
        s = sigma if sigma is not None else max(radius / 2.0, 0.5)
        return np.exp(-0.5 * (x / s) ** 2)
    raise ValueError(f"unknown window '{window}'; expected 'box' or 'gaussian'")


def gradients(prev: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ix, Iy (central differences of the mean frame, one-sided at the border) and It, each float64 [..., H, W]."""
    mean = (prev.astype(np.float64) + nxt.astype(np.float64)) / 2
    ix = np.gradient(mean, axis=-1)
    iy = np.gradient(mean, axis=-2)
    it = nxt.astype(np.float64) - prev.astype(np.float64)
    return ix, iy, it


def lucas_kanade(prev: np.ndarray, nxt: np.ndarray, *, radius: int = 2, window: str = "gaussian",
                 sigma: float | None = None, min_eig: float = 1e-2) -> np.ndarray:
    """Dense LK flow from `prev` to `nxt`.

    Args:
        prev, nxt: float grayscale [..., H, W] (any leading batch shape, e.g. [T-1, H, W]).
        radius: window half-size (window 2r+1 pixels square).
        min_eig: threshold on the smaller eigenvalue of the (window-weighted) structure tensor.
    Returns:
        float32 [..., 2, H, W]: (u, v) = horizontal and vertical displacement in pixels.
    """
    from scipy.ndimage import correlate1d  # here: every decoding actor imports this module, few compute flow

    ix, iy, it = gradients(prev, nxt)
    k = window_kernel(window, radius, sigma)

    def wsum(a: np.ndarray) -> np.ndarray:
        return correlate1d(correlate1d(a, k, axis=-1, mode="constant"), k, axis=-2, mode="constant")

    sxx, sxy, syy = wsum(ix * ix), wsum(ix * iy), wsum(iy * iy)
    sxt, syt = wsum(ix * it), wsum(iy * it)
    det = sxx * syy - sxy * sxy
    half_trace = (sxx + syy) / 2
    lam_min = half_trace - np.sqrt(np.maximum(half_trace ** 2 - det, 0.0))
    ok = lam_min > min_eig
    safe = np.where(ok, det, 1.0)
    u = np.where(ok, (sxy * syt - syy * sxt) / safe, 0.0)
    v = np.where(ok, (sxy * sxt - sxx * syt) / safe, 0.0)
    return np.stack([u, v], axis=-3).astype(np.float32)


def clip_flow(frames: np.ndarray, *, chw: bool = False, **kwargs) -> np.ndarray:
    """Flow of a clip: uint8 RGB [T, H, W, 3] (or [T, 3, H, W] with chw) -> float32 [T, 2, H, W];
    flow[t] = motion t-1 -> t, flow[0] = 0. `kwargs` go to `lucas_kanade`."""
    g = gray(frames, chw=chw)
    out = np.zeros((g.shape[0], 2) + g.shape[1:], dtype=np.float32)
    if g.shape[0] > 1:
        out[1:] = lucas_kanade(g[:-1], g[1:], **kwargs)
    return out


def normalize_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Displacements in pixels -> [-1, 1]: flow / bound, clipped."""
    return np.clip(flow / bound, -1.0, 1.0)
