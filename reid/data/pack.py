"""Pack frame-folder tracklets into one H.264 video per tracklet (`reid prepare ... --pack video`).

Decoding one video file is far cheaper for the data pipeline than opening hundreds of JPEGs. The encoder settings
make random access exact: no B-frames (decode order = display order) and a short, fixed GOP (a keyframe every `gop`
frames, no scene-cut keyframes), so decord's seek-to-keyframe-then-decode lands on the requested frame after at
most `gop - 1` extra decodes. Every written file is decoded again and its frame count checked.

Frames of a tracklet are encoded at the size of its first frame (others are resized to it). Padding (replicated
bottom rows / right columns): odd sizes by one because yuv420p needs even dimensions, and widths that decord 0.6.0
cannot return (it fails with "DECORDArrayCopyFromTo: The size must exactly match" for the even widths in
`DECORD_BAD_WIDTHS`, measured over 2..400 px) by two more columns until the width is readable. The original size is
kept in `extra["frame_size"]` ("HxW") so a reader can crop the pad away. Each file is checked with both decoders:
PyAV decodes every frame (the count must match), decord reads the last frame (its size must match).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from reid.data.datasets.common import count_video_frames
from reid.data.records import Manifest, TrackletRecord
from reid.data.video_libs import decord as load_decord
from reid.errors import ReidError
from reid.progress import bar as progress_bar

VIDEO_DIR = "videos"
DECORD_BAD_WIDTHS = frozenset({2, 4, 6, 8, 12, 16, 24, 48, 72})


@dataclass(frozen=True)
class PackOptions:
    fps: int = 25
    gop: int = 8
    crf: int = 18
    preset: str = "fast"

    def describe(self) -> str:
        return f"libx264 yuv420p crf={self.crf} gop={self.gop} bframes=0 fps={self.fps}"


def _load_frames(paths: Sequence[Path]) -> tuple[list[np.ndarray], tuple[int, int]]:
    from PIL import Image

    frames: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    for p in paths:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if size is None:
                    size = im.size
                elif im.size != size:
                    im = im.resize(size, Image.BILINEAR)
                frames.append(np.asarray(im))
        except OSError as exc:
            raise ReidError(f"cannot read frame {p} ({exc})") from None
    assert size is not None
    return frames, (size[1], size[0])


def padded_size(h: int, w: int) -> tuple[int, int]:
    """Encoded (height, width) of h x w frames: even, and a width decord can read."""
    pw = w + w % 2
    while pw in DECORD_BAD_WIDTHS:
        pw += 2
    return h + h % 2, pw


def encode_frames(paths: Sequence[Path], out: Path, options: PackOptions = PackOptions()) -> tuple[int, int, int]:
    """Encode image files (temporal order) into `out` (.mp4). Returns (frames written, height, width) where height
    and width are the frames' size before padding to even numbers."""
    import av

    if not paths:
        raise ReidError(f"cannot pack {out}: the tracklet has no frames")
    frames, (h, w) = _load_frames(paths)
    ph, pw = padded_size(h, w)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream("libx264", rate=options.fps)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.codec_context.gop_size = options.gop
        stream.codec_context.max_b_frames = 0
        stream.options = {"crf": str(options.crf), "preset": options.preset, "bf": "0", "g": str(options.gop),
                          "keyint_min": str(options.gop), "sc_threshold": "0"}
        for i, arr in enumerate(frames):
            if (ph, pw) != (h, w):
                arr = np.pad(arr, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, options.fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return len(frames), h, w


def _pack_one(job: tuple[str, list[Path], Path, PackOptions]) -> tuple[str, int, int, int]:
    tid, paths, out, options = job
    n, h, w = encode_frames(paths, out, options)
    decoded = count_video_frames(out, decode=True)
    if decoded != n:
        raise ReidError(f"packing tracklet {tid}: wrote {n} frames to {out} but decoding gives {decoded}")
    check_decord(out, n, padded_size(h, w))
    return tid, n, h, w


def check_decord(path: Path, num_frames: int, size: tuple[int, int]) -> None:
    """decord (the pipeline's reader) must see `num_frames` frames and return the last one at `size` (h, w)."""
    decord = load_decord()

    try:
        reader = decord.VideoReader(str(path))
        n = len(reader)
        shape = tuple(reader[num_frames - 1].shape) if n == num_frames else None
    except decord.DECORDError as exc:
        raise ReidError(f"decord cannot read the packed video {path}: {str(exc).splitlines()[0]}") from None
    if n != num_frames or shape != (*size, 3):
        raise ReidError(f"decord reads {path} as {n} frames of {shape}; expected {num_frames} of {(*size, 3)}")


def _video_names(records: Sequence[TrackletRecord]) -> dict[str, str]:
    names: dict[str, str] = {}
    used: set[str] = set()
    for r in records:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", r.tracklet_id) or "tracklet"
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names[r.tracklet_id] = f"{VIDEO_DIR}/{name}.mp4"
    return names


def pack_manifest(manifest: Manifest, out_dir: str | Path, options: PackOptions = PackOptions(),
                  workers: int = 1) -> Manifest:
    """Encode every frame-folder record of `manifest` into `out_dir/videos/<tracklet_id>.mp4`.

    Returns a manifest rooted at `out_dir` whose records name the videos (`video=`, `frame_start=0`, no frames).
    """
    out_dir = Path(out_dir)
    for r in manifest.records:
        if r.video is not None or r.keypoints is not None:
            what = "is already a video" if r.video is not None else "has keypoints (pack before estimating them)"
            raise ReidError(f"cannot pack tracklet {r.tracklet_id}: it {what}; --pack video takes frame folders")
    names = _video_names(manifest.records)
    jobs = [(r.tracklet_id, [manifest.resolve(f) for f in r.frames], out_dir / names[r.tracklet_id], options)
            for r in manifest.records]
    results: dict[str, tuple[int, int, int]] = {}
    bar = progress_bar(total=len(jobs), desc="pack", unit="tracklets")
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for tid, n, h, w in pool.map(_pack_one, jobs, chunksize=8):
                results[tid] = (n, h, w)
                bar.update()
    else:
        for job in jobs:
            tid, n, h, w = _pack_one(job)
            results[tid] = (n, h, w)
            bar.update()
    bar.close()
    records = []
    for r in manifest.records:
        n, h, w = results[r.tracklet_id]
        records.append(replace(r, video=names[r.tracklet_id], frame_start=0, frames=(), num_frames=n,
                               extra={**r.extra, "frame_size": f"{h}x{w}"}))
    meta = {**manifest.meta, "packed": options.describe(), "source_root": str(manifest.root.resolve())}
    return Manifest(records=records, root=out_dir, dataset=manifest.dataset, attributes=manifest.attributes,
                    meta=meta)
