"""A tiny moving-squares video re-ID set (PyAV H.264) for data-pipeline tests and `reid bench data`.

Each identity has its own square colour and background tint; each camera its own motion direction. Every tracklet
is written as one H.264 video (no B-frames, short GOP) and, optionally, as JPEG frame files, so the same tracklets
can be read both ways. Keypoints (COCO-18, [num_frames, 18, 3]) follow the square, and a two-column attribute
schema is attached. This is a fixture, not the project's synthetic generator (`reid.data.synth`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reid.data.attributes import schema_from_columns
from reid.data.records import Manifest, TrackletRecord, write_manifest

# a stick figure in unit box coordinates (x, y), COCO-18 order
_SKELETON = np.array([
    [0.5, 0.08], [0.5, 0.2], [0.3, 0.22], [0.22, 0.4], [0.2, 0.55], [0.7, 0.22], [0.78, 0.4], [0.8, 0.55],
    [0.4, 0.55], [0.4, 0.75], [0.4, 0.95], [0.6, 0.55], [0.6, 0.75], [0.6, 0.95], [0.45, 0.05], [0.55, 0.05],
    [0.4, 0.07], [0.6, 0.07],
], dtype=np.float32)


def render_tracklet(pid: int, camid: int, num_frames: int, size: tuple[int, int], seed: int) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """uint8 frames [N, H, W, 3] of one moving square and its keypoints float32 [N, 18, 3]."""
    h, w = size
    rng = np.random.default_rng([seed, pid, camid])
    colour = np.array([(pid * 67) % 256, (pid * 131 + 40) % 256, (pid * 29 + 90) % 256], dtype=np.uint8)
    bg = rng.integers(30, 90, size=3).astype(np.uint8)
    sq_h, sq_w = h // 2, w // 2
    vy, vx = (0.5, 0.25) if camid % 2 else (-0.25, 0.5)
    y0, x0 = rng.uniform(0, h - sq_h), rng.uniform(0, w - sq_w)
    yy, xx = np.mgrid[0:h, 0:w]
    texture = ((np.sin(yy / 3.0) + np.cos(xx / 2.0)) * 20).astype(np.int16)
    frames = np.empty((num_frames, h, w, 3), dtype=np.uint8)
    kps = np.zeros((num_frames, 18, 3), dtype=np.float32)
    for t in range(num_frames):
        y = int(round((y0 + vy * t) % (h - sq_h)))
        x = int(round((x0 + vx * t) % (w - sq_w)))
        img = np.clip(bg.astype(np.int16) + texture[..., None], 0, 255).astype(np.uint8)
        img[y:y + sq_h, x:x + sq_w] = colour
        frames[t] = img
        kps[t, :, 0] = x + _SKELETON[:, 0] * sq_w
        kps[t, :, 1] = y + _SKELETON[:, 1] * sq_h
        kps[t, :, 2] = 1.0
    return frames, kps


def write_video(path: Path, frames: np.ndarray, fps: int = 25, gop: int = 8) -> None:
    """H.264 (yuv420p, no B-frames, keyframe every `gop` frames) with PyAV; H and W must be even."""
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(gop), "bf": "0", "crf": "18", "preset": "ultrafast", "sc_threshold": "0"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_toy_dataset(root: str | Path, *, ids: int = 6, cams: int = 2, tracklets_per_cam: int = 1,
                      num_frames: int = 20, size: tuple[int, int] = (64, 32), seed: int = 0,
                      frame_files: bool = False, query_ids: int = 0) -> Path:
    """Write videos (+ optional JPEG frames), keypoints and a manifest under `root`; returns the manifest path.

    The first `ids - query_ids` identities are "train"; the rest are split into query (camera 0) and gallery.
    `frame_files=True` makes the records point at the JPEG frames instead of the videos.
    """
    from PIL import Image

    root = Path(root)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "keypoints").mkdir(exist_ok=True)
    records = []
    for pid in range(1, ids + 1):
        for cam in range(1, cams + 1):
            for k in range(tracklets_per_cam):
                tid = f"p{pid:03d}_c{cam}_t{k}"
                frames, kps = render_tracklet(pid, cam * 10 + k, num_frames, size, seed)
                write_video(root / "videos" / f"{tid}.mp4", frames)
                np.save(root / "keypoints" / f"{tid}.npy", kps)
                files: tuple[str, ...] = ()
                if frame_files:
                    d = root / "frames" / tid
                    d.mkdir(parents=True, exist_ok=True)
                    for t, f in enumerate(frames):
                        Image.fromarray(f).save(d / f"{t:04d}.jpg", quality=95)
                    files = tuple(f"frames/{tid}/{t:04d}.jpg" for t in range(num_frames))
                role = "train" if pid <= ids - query_ids else ("query" if cam == 1 else "gallery")
                records.append(TrackletRecord(
                    tracklet_id=tid, pid=pid, camid=cam, dataset="toy", role=role, num_frames=num_frames,
                    video=None if files else f"videos/{tid}.mp4", frames=files, tracklet_no=k,
                    attributes={"gender": pid % 2, "top color": pid % 4}, keypoints=f"keypoints/{tid}.npy"))
    schema = schema_from_columns({"gender": 2, "top color": 4})
    return write_manifest(Manifest(records, root, "toy", schema))
