import numpy as np
import pytest

from reid.data.flow import clip_flow, gradients, lucas_kanade, normalize_flow, window_kernel


def pattern(h, w, dy=0.0, dx=0.0):
    """A smooth texture translated by (dy, dx): I(y, x) = f(y - dy, x - dx)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y, x = y - dy, x - dx
    return 100 + 40 * np.sin(x / 3.1) * np.cos(y / 4.3) + 30 * np.sin((x + 2 * y) / 5.7)


def naive_lk(prev, nxt, radius, kernel1d, min_eig):
    """Per-pixel loop straight from Lucas & Kanade: weighted least squares over the window, zero outside."""
    ix, iy, it = gradients(prev, nxt)
    h, w = prev.shape
    wk = np.outer(kernel1d, kernel1d)
    out = np.zeros((2, h, w))
    for y in range(h):
        for x in range(w):
            a = np.zeros((2, 2))
            b = np.zeros(2)
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        g = np.array([ix[yy, xx], iy[yy, xx]])
                        wt = wk[dy + radius, dx + radius]
                        a += wt * np.outer(g, g)
                        b += wt * g * it[yy, xx]
            if np.linalg.eigvalsh(a)[0] > min_eig:
                out[:, y, x] = np.linalg.solve(a, -b)
    return out


@pytest.mark.parametrize("window", ["box", "gaussian"])
def test_matches_naive_loop(window):
    rng = np.random.default_rng(0)
    prev = pattern(14, 11) + rng.normal(0, 1, (14, 11))
    nxt = pattern(14, 11, 0.4, -0.3) + rng.normal(0, 1, (14, 11))
    prev[:3, :4] = 50  # a flat patch exercises the aperture threshold
    nxt[:3, :4] = 50
    fast = lucas_kanade(prev, nxt, radius=2, window=window, min_eig=5.0)
    slow = naive_lk(prev, nxt, 2, window_kernel(window, 2), 5.0)
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4)
    assert np.all(fast[:, 0, 0] == 0)


@pytest.mark.parametrize("shift", [(0.5, 0.0), (0.0, -0.7), (0.3, 0.4)])
def test_recovers_translation(shift):
    dy, dx = shift
    prev, nxt = pattern(40, 30), pattern(40, 30, dy, dx)
    flow = lucas_kanade(prev, nxt, radius=3, window="gaussian")
    inner = flow[:, 6:-6, 6:-6]
    assert np.median(inner[0]) == pytest.approx(dx, abs=0.05)
    assert np.median(inner[1]) == pytest.approx(dy, abs=0.05)


def test_clip_flow_shapes_and_normalisation():
    frames = np.stack([np.repeat(pattern(24, 16, 0, 0.5 * t)[..., None], 3, axis=2) for t in range(4)])
    frames = np.clip(frames, 0, 255).astype(np.uint8)
    flow = clip_flow(frames)
    assert flow.shape == (4, 2, 24, 16) and flow.dtype == np.float32
    assert np.all(flow[0] == 0)
    assert np.median(flow[1:, 0, 5:-5, 5:-5]) == pytest.approx(0.5, abs=0.1)
    np.testing.assert_allclose(clip_flow(np.ascontiguousarray(np.moveaxis(frames, -1, 1)), chw=True), flow,
                               atol=1e-4)
    n = normalize_flow(np.array([-9.0, -2.0, 0.0, 1.0, 100.0]), bound=4.0)
    assert n.tolist() == [-1.0, -0.5, 0.0, 0.25, 1.0]
