"""Cameras and nuisances: render one tracklet's frames and keypoints.

A camera has its own background (a horizontally periodic street texture), colour cast and brightness, defocus
blur, noise level and typical viewpoint. One tracklet's frames are composed as

    background crop (scrolls with the walker) -> person (render.py, placed by the box: jitter, partial crops)
    -> occluder -> illumination -> defocus -> motion blur -> noise

Every nuisance draws from its own random stream, derived from (seed, tracklet index, nuisance name), so switching
one knob changes only the pixels that nuisance touches: the occluder's run and box, the lost run (frames that show
background only), the noise field and so on are identical between two renders that differ in another knob.

Keypoints: float32 [T, 18, 3] (x, y, confidence) in the written frame's pixels (pixel centres are integers).
Confidence 1 = visible, 0.5 = hidden behind the person's own body or carried items, 0 = not visible: a face joint
on the far side of the head, outside the frame, under an occluder, or in a lost frame (then x = y = 0 too).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.ndimage import uniform_filter1d

from reid.data.synth.identities import Identity
from reid.data.synth.presets import SynthConfig
from reid.data.synth.render import Placement, draw_person
from reid.data.synth.skeleton import MOTION_SPEED, body_of, pose_3d

SUPERSAMPLE = 2
FOOT_Y = 0.955  # of the frame height: where a centred box puts the feet
PERSON_H = 0.9  # person height / frame height in a centred box
_CUT_JOINTS = [0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]  # all but elbows and wrists (waving leaves the box)


def stream(seed: int, index: int, name: str) -> np.random.Generator:
    """Independent random stream for one (seed, tracklet, purpose)."""
    return np.random.default_rng(np.random.SeedSequence([seed, index, zlib.crc32(name.encode())]))


@dataclass(frozen=True)
class TrackletSpec:
    """What to render: decided by the plan, independent of the nuisance knobs."""

    index: int
    tracklet_id: str
    identity: Identity
    pid: int
    camid: int
    role: str
    tracklet_no: int
    num_frames: int
    motion: int
    pose: int
    yaw: float
    junk: bool = False


@dataclass(frozen=True)
class Camera:
    camid: int
    background: np.ndarray  # uint8 [H, Wb, 3], periodic along x
    gain: np.ndarray  # [3] colour cast
    offset: float  # brightness offset, grey levels
    defocus: float  # Gaussian sigma, pixels
    noise_gain: float


@dataclass
class RenderInfo:
    """Per-frame ground truth of the nuisances (tests and the quality flags use it)."""

    lost: np.ndarray  # bool [T]
    occluded: np.ndarray  # bool [T]
    occluder_box: np.ndarray  # float [T, 4] x0, y0, x1, y1 (NaN where none)
    partial: np.ndarray  # bool [T] the box is moved off the person (knob partial)
    body_box: np.ndarray  # float [T, 4] the target's box (where an occluder may go)
    flags: dict[str, int]  # the attribute CSV's quality flags


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    wb = 16 * w
    horizon = int(h * rng.uniform(0.5, 0.72))
    wall = rng.integers(60, 220, 3)
    ground = rng.integers(70, 170, 3)
    img = Image.new("RGB", (wb, h), tuple(int(c) for c in wall))
    d = ImageDraw.Draw(img)
    d.rectangle([0, horizon, wb, h], fill=tuple(int(c) for c in ground))
    style = int(rng.integers(4))
    per = [p for p in range(max(4, w // 4), wb) if wb % p == 0]  # periods that keep the texture periodic
    if style == 0:  # bricks
        bw, bh = int(rng.choice(per[:4])), max(3, h // 24)
        for r, y in enumerate(range(0, horizon, bh)):
            for x in range(-bw, wb + bw, bw):
                x0 = x + (bw // 2 if r % 2 else 0)
                d.rectangle([x0, y, x0 + bw - 2, y + bh - 2], fill=tuple(int(c) for c in np.clip(
                    wall + rng.integers(-18, 18, 3), 0, 255)))
    elif style == 1:  # facade with windows
        p = int(rng.choice(per[1:6]))
        win = tuple(int(c) for c in rng.integers(20, 120, 3))
        for x in range(0, wb, p):
            for y in range(h // 10, horizon - h // 8, h // 5):
                d.rectangle([x + p // 4, y, x + 3 * p // 4, y + h // 9], fill=win)
    elif style == 2:  # greenery: tree crowns and trunks
        for _ in range(wb // max(8, w // 2)):
            x, r = int(rng.integers(0, wb)), int(rng.integers(h // 10, h // 4))
            col = tuple(int(c) for c in (rng.integers(20, 70), rng.integers(80, 160), rng.integers(20, 70)))
            for dx in (-wb, 0, wb):
                d.rectangle([x + dx - r // 6, horizon - r, x + dx + r // 6, horizon], fill=(80, 60, 40))
                d.ellipse([x + dx - r, horizon - 2 * r, x + dx + r, horizon - r // 2], fill=col)
    else:  # shop fronts: coloured panels
        x = 0
        while x < wb:
            pw = int(rng.integers(w // 2, 2 * w))
            d.rectangle([x, h // 8, min(wb, x + pw) - 2, horizon], fill=tuple(int(c) for c in rng.integers(30, 240, 3)))
            x += pw
    tile = int(rng.choice(per[:3]))
    for x in range(0, wb, tile):  # paving joints
        d.line([x, horizon, x - (x - wb // 2) // 8, h], fill=tuple(int(c) for c in ground * 0.8), width=1)
    arr = np.asarray(img).astype(np.float32)
    # Streets are greyish: desaturate, so that clothing, not the wall, carries most of the colour (as in MARS)
    grey = arr.mean(-1, keepdims=True)
    arr = grey + (arr - grey) * rng.uniform(0.25, 0.5)
    xs = np.arange(wb) / wb * 2 * np.pi  # low-frequency shading, periodic in x
    shade = sum(rng.uniform(-8, 8) * np.sin(k * xs + rng.uniform(0, 6.3)) for k in (1, 3, 7))
    arr += shade[None, :, None] + rng.normal(0, 4, (h, wb, 1))
    return np.clip(arr, 0, 255).astype(np.uint8)


@lru_cache(maxsize=32)
def make_camera(seed: int, camid: int, height: int, width: int, illumination: float, defocus: float) -> Camera:
    """A camera's look (its typical viewpoint is in plan.camera_pose_weights)."""
    rng = stream(seed, camid, "camera")
    return Camera(
        camid=camid, background=_background(rng, height, width),
        gain=1.0 + illumination * rng.uniform(-0.1, 0.1, 3), offset=float(illumination * rng.uniform(-18, 18)),
        defocus=float(defocus * rng.uniform(0.0, 0.7)), noise_gain=float(rng.uniform(0.7, 1.3)),
    )


def _run(rng: np.random.Generator, t: int, lo: float, hi: float) -> np.ndarray:
    """bool [t]: one run of consecutive frames covering lo..hi of the tracklet."""
    n = max(1, min(t, int(round(t * rng.uniform(lo, hi)))))
    start = int(rng.integers(0, t - n + 1))
    out = np.zeros(t, dtype=bool)
    out[start:start + n] = True
    return out


def render_tracklet(spec: TrackletSpec, cfg: SynthConfig, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, RenderInfo]:
    """Render one tracklet.

    Returns:
        frames uint8 [T, H, W, 3], keypoints float32 [T, 18, 3], per-frame nuisance info.
    """
    t_len, h, w, k = spec.num_frames, cfg.height, cfg.width, SUPERSAMPLE
    cam = make_camera(seed, spec.camid, h, w, cfg.illumination, cfg.defocus)
    ident = spec.identity
    body = body_of(ident.age, ident.gender, ident.build)
    r_motion = stream(seed, spec.index, "motion")
    phase0, speed = r_motion.uniform(0, 2 * np.pi), r_motion.uniform(0.85, 1.15)
    x0, hscale = r_motion.integers(0, cam.background.shape[1]), r_motion.uniform(0.97, 1.03)
    step = MOTION_SPEED[spec.motion] * speed * PERSON_H * h / cfg.fps * np.sin(np.deg2rad(spec.yaw))

    r_jit = stream(seed, spec.index, "jitter")
    jx, jy, js = (np.clip(r_jit.normal(0, 1, (3, t_len)), -2.5, 2.5) * cfg.jitter
                  * np.array([[0.1 * w], [0.05 * h], [0.08]]))
    r_lost = stream(seed, spec.index, "lost")
    if spec.junk:  # the person is lost most of the time
        lost = _run(r_lost, t_len, 0.6, 0.9)
    elif r_lost.random() < cfg.lost:
        lost = _run(r_lost, t_len, 0.1, 0.4)
    else:
        lost = np.zeros(t_len, dtype=bool)
    # partial crops: for a run of frames the box slides off the person (head, feet or one side cut off)
    r_part = stream(seed, spec.index, "partial")
    partial = _run(r_part, t_len, 0.3, 0.8) & ~lost if r_part.random() < cfg.partial else np.zeros(t_len, bool)
    side, cut = int(r_part.integers(3)), r_part.uniform(0.2, 0.35)
    if side == 0:  # box too low: the head is cut off (the person moves up in the frame)
        jy = jy - partial * cut * h
    elif side == 1:  # box too high: the feet are cut off
        jy = jy + partial * cut * h
    else:  # box beside the person: one side is cut off
        jx = jx + partial * (1 if r_part.random() < 0.5 else -1) * 1.6 * cut * w
    r_occ = stream(seed, spec.index, "occlusion")
    occluded = _run(r_occ, t_len, 0.25, 0.7) & ~lost if r_occ.random() < cfg.occlusion else np.zeros(t_len, bool)
    occ_kind, occ_frac, occ_pos = int(r_occ.integers(3)), r_occ.uniform(0.3, 0.55), r_occ.uniform(0.1, 0.9)
    occ_col = r_occ.integers(30, 220, 3)

    frames = np.empty((t_len, h, w, 3), dtype=np.uint8)
    kps = np.zeros((t_len, 18, 3), dtype=np.float32)
    occ_box = np.full((t_len, 4), np.nan)
    body_box = np.zeros((t_len, 4))
    cols = (x0 + np.arange(w)) % cam.background.shape[1]
    for t in range(t_len):
        shift = int(round(step * t))
        bg = cam.background[:, (cols + shift) % cam.background.shape[1]]
        place = Placement(cx=(w - 1) / 2 + jx[t], foot_y=FOOT_Y * h + jy[t],
                          height=PERSON_H * h * hscale * (1 + js[t]))
        body_box[t] = (place.cx - 0.27 * place.height, place.foot_y - 1.02 * place.height,
                       place.cx + 0.27 * place.height, place.foot_y + 0.01 * place.height)
        if lost[t]:
            frames[t] = bg
            continue
        canvas = Image.fromarray(np.repeat(np.repeat(bg, k, axis=0), k, axis=1))
        labels = Image.new("L", canvas.size, 0)
        joints, extras = pose_3d(body, spec.motion, t / cfg.fps, phase0)
        xy, vis = draw_person(canvas, labels, ident, body, joints, extras, spec.yaw, place, k, spec.motion)
        frame = np.asarray(canvas.reduce(k)).copy()
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
        vis = np.where(inside, vis, 0.0)
        if occluded[t]:
            occ_box[t] = _occluder(frame, body_box[t], occ_kind, occ_frac, occ_pos, occ_col)
            x_a, y_a, x_b, y_b = occ_box[t]
            under = ((xy[:, 0] >= x_a - 0.5) & (xy[:, 0] <= x_b - 0.5)
                     & (xy[:, 1] >= y_a - 0.5) & (xy[:, 1] <= y_b - 0.5))
            vis = np.where(under, 0.0, vis)
        frames[t] = frame
        kps[t, :, :2], kps[t, :, 2] = xy, vis
    _camera_effects(frames, cam, cfg, seed, spec.index)
    cut = np.array([not lost[t] and _outside(kps[t], w, h) for t in range(t_len)])
    flags = {"occlusion": int(occluded.any()), "cut-out": int(cut.mean() >= 0.2), "multi-person": 0,
             "background-dominant": 0, "target-change": 0, "target-miss": int(lost.any()), "wrong-target": 0}
    return frames, kps, RenderInfo(lost, occluded, occ_box, partial, body_box, flags)


def _outside(kp: np.ndarray, w: int, h: int) -> bool:
    xy = kp[_CUT_JOINTS, :2]
    return bool(((xy[:, 0] < 0) | (xy[:, 0] > w - 1) | (xy[:, 1] < 0) | (xy[:, 1] > h - 1)).any())


def _occluder(frame: np.ndarray, box: np.ndarray, kind: int, frac: float, pos: float, col: np.ndarray
              ) -> np.ndarray:
    """Paint an occluder inside the target's box (a low object, a side object, or a pole); returns its box."""
    x0, y0, x1, y1 = box
    if kind == 0:  # low wall / car / bench over the legs
        ob = (x0, y1 - frac * (y1 - y0), x1, y1)
    elif kind == 1:  # a wall or another person covering one side
        ob = (x0, y0, x0 + frac * (x1 - x0), y1) if pos < 0.5 else (x1 - frac * (x1 - x0), y0, x1, y1)
    else:  # a pole across the body
        c, half = x0 + pos * (x1 - x0), 0.1 * (x1 - x0)
        ob = (c - half, y0, c + half, y1)
    h, w = frame.shape[:2]
    xa, ya = max(0, int(np.ceil(ob[0] - 0.5))), max(0, int(np.ceil(ob[1] - 0.5)))
    xb, yb = min(w, int(np.ceil(ob[2] - 0.5))), min(h, int(np.ceil(ob[3] - 0.5)))
    if xb > xa and yb > ya:
        stripes = ((np.arange(ya, yb) // 3) % 2)[:, None, None] * 25
        frame[ya:yb, xa:xb] = np.clip(col[None, None] - stripes, 0, 255).astype(np.uint8)
    return np.array([xa, ya, xb, yb], dtype=float)


def _camera_effects(frames: np.ndarray, cam: Camera, cfg: SynthConfig, seed: int, index: int) -> None:
    """In place: illumination / colour cast, defocus, motion blur, noise."""
    f = frames.astype(np.float32)
    light = 1.0 + cfg.illumination * stream(seed, index, "light").uniform(-0.08, 0.08)
    f *= (cam.gain * light).astype(np.float32)
    f += np.float32(cam.offset)
    if cam.defocus >= 0.05:
        for t in range(len(f)):
            img = Image.fromarray(np.clip(f[t], 0, 255).astype(np.uint8))
            f[t] = np.asarray(img.filter(ImageFilter.GaussianBlur(cam.defocus)), dtype=np.float32)
    r_blur = stream(seed, index, "blur")
    if r_blur.random() < cfg.blur:
        f = uniform_filter1d(f, size=int(r_blur.choice([3, 5, 7])), axis=2, mode="nearest")
    if cfg.noise > 0:
        noise = stream(seed, index, "noise").standard_normal(f.shape, dtype=np.float32)
        f += noise * np.float32(cfg.noise * cam.noise_gain)
    np.clip(np.rint(f, out=f), 0, 255, out=f)
    frames[...] = f
