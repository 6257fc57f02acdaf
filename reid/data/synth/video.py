"""Encode tracklets as H.264 (PyAV) that decord reads frame-accurately; decode helpers for checks.

Encoding: libx264, yuv444p (no chroma subsampling: on 8 demo tracklets without noise, 4:2:0 at the same crf and
size gave a mean absolute error of 3.4 vs 2.0 grey levels and a 99th percentile of 28 vs 12; it smears small
coloured parts such as shoes and glasses), constant quality `crf`, constant frame rate, NO B-frames (`bframes=0`: decode order = display
order, so a seek needs no reordering; decord#365 is about B-frame ordering), a fixed keyframe interval
(`keyint = min-keyint = gop`, `scenecut=0`) and one encoder thread. That is bit-exact output for a seed nearly
always, not always: the same frames encoded 300 times on a busy machine gave 1-6 files in which one frame was
coded differently, the difference carried through the rest of its GOP (measured 2026-12-05; up to 1.15 grey levels
on average over a synthetic tracklet; tests/data/test_synth_generate.py compares videos to within that).
Files are written to a temporary name and renamed, so a reader never sees a half-written video.

Measured with `measure_gop` below on 60 demo tracklets (128x64, crf 12, 9-64 frames, 1563 frames; decord 0.6.0,
PyAV 18.1, shared 2-core machine; CPU time of `get_batch` on 8 random indices, median over the videos):

| gop | batches differing from sequential PyAV decode | total size | CPU per random batch |
|---|---|---|---|
| 1   | 0 / 60 | 4.24 MB | 4.0 ms |
| 4   | 0 / 60 | 3.40 MB | 5.9 ms |
| 8   | 0 / 60 | 3.10 MB | 7.4 ms |
| 16  | 0 / 60 | 2.90 MB | 8.7 ms |
| 32  | 0 / 60 | 2.82 MB | 9.4 ms |
| 250 | 0 / 60 | 2.79 MB | 10.2 ms |

Without B-frames every GOP was frame-accurate; the GOP trades random-access time (decord decodes forward from the
previous keyframe; about 4 ms of each batch is fixed cost) against size. Default gop = 8: a random read decodes at
most 8 frames, for +11 % size over gop = 250. Quality: crf 12 gives a mean absolute error of about 2 grey levels
against the rendered frames without sensor noise (up to ~60 at a few thin edges such as glasses; 3.2 with the
default noise, which the codec partly removes); crf 18 halves the size at 4.3. The container's frame count is exact
(decord `len()` == frames written), which decord needs (ray-2.60-facts section 8, decord#373).

decord 0.6.0 cannot read frames of width 16, 24, 48 or 72 pixels ("DECORDArrayCopyFromTo: The size must exactly
match", for any pixel format and height); measured over every even width 16..398 at heights 64 and 96, and every
even height 16..298 at widths 32 and 64: no other size failed. `generate` refuses those widths (DECORD_BAD_WIDTHS).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from reid.data.video_libs import decord as load_decord

DECORD_BAD_WIDTHS = frozenset({16, 24, 48, 72})


def encode_video(path: str | Path, frames: np.ndarray, fps: int = 25, crf: int = 12, gop: int = 8) -> Path:
    """Write frames uint8 [T, H, W, 3] (RGB) to an H.264 .mp4 at `path` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")
    t, h, w, _ = frames.shape
    with av.open(str(tmp), "w", format="mp4") as container:
        s = container.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv444p"
        s.options = {"crf": str(crf), "preset": "veryfast",
                     "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:threads=1"}
        s.codec_context.thread_count = 1
        for i in range(t):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
            vf.pts = i
            for packet in s.encode(vf):
                container.mux(packet)
        for packet in s.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def decode_pyav(path: str | Path) -> np.ndarray:
    """Sequential decode of every frame: uint8 [T, H, W, 3]."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def decode_decord(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """decord random access (all frames if indices is None): uint8 [N, H, W, 3]."""
    vr = load_decord().VideoReader(str(path), num_threads=1)
    idx = list(range(len(vr))) if indices is None else [int(i) for i in indices]
    return vr.get_batch(idx).asnumpy()


def measure_gop(clips: Sequence[np.ndarray], gops: Sequence[int] = (1, 4, 8, 16, 32, 250), crf: int = 12,
                per_video: int = 8, workdir: str | Path = "/tmp", seed: int = 0) -> list[dict[str, float]]:
    """The measurement behind the table above: encode `clips` at each GOP, read random indices with decord,
    compare against a sequential PyAV decode; returns one row per GOP."""
    decord = load_decord()

    rng = np.random.default_rng(seed)
    rows = []
    for gop in gops:
        paths = [encode_video(Path(workdir) / f"gop{gop}_{i}.mp4", c, crf=crf, gop=gop) for i, c in enumerate(clips)]
        bad, secs = 0, []
        for p, c in zip(paths, clips, strict=True):
            ref = decode_pyav(p)
            vr = decord.VideoReader(str(p), num_threads=1)
            idx = rng.integers(0, len(c), per_video).tolist()
            t0 = time.process_time()  # CPU time: robust to other jobs on a shared machine
            got = vr.get_batch(idx).asnumpy()
            secs.append(time.process_time() - t0)
            bad += int(len(vr) != len(c) or not np.array_equal(got, ref[idx]))
        rows.append({"gop": gop, "mismatches": bad, "videos": len(clips),
                     "bytes": sum(p.stat().st_size for p in paths), "batch_ms": 1000 * float(np.median(secs))})
        for p in paths:
            p.unlink()
    return rows
