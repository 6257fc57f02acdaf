"""Pack frame-folder tracklets into one H.264 video per tracklet (`reid prepare ... --pack video`).

Decoding one video file is far cheaper for the data pipeline than opening hundreds of JPEGs. The encoder settings
make random access exact: no B-frames (decode order = display order) and a short, fixed GOP (a keyframe every `gop`
frames, no scene-cut keyframes), so decord's seek-to-keyframe-then-decode lands on the requested frame after at
most `gop - 1` extra decodes. Every written file is decoded again and its frame count checked, under a temporary
name that is renamed to the final one only then.

A frame that cannot be read (missing, truncated, not an image) is replaced in its video by the nearest readable frame
of the tracklet, and listed in the report (`reid prepare` prints the count and writes the list into summary.json); a
tracklet with no readable frame is left out of the manifest. Running the same command again keeps the videos an
earlier run finished (`pack_ledger.py`).

Frames of a tracklet are encoded at the size of its first frame (others are resized to it). Padding (replicated
bottom rows / right columns): odd sizes by one because yuv420p needs even dimensions, and widths that decord 0.6.0
cannot return (it fails with "DECORDArrayCopyFromTo: The size must exactly match" for the even widths in
`DECORD_BAD_WIDTHS`, measured over 2..400 px) by two more columns until the width is readable. The original size is
kept in `extra["frame_size"]` ("HxW") so a reader can crop the pad away. Each file is checked with both decoders:
PyAV decodes every frame (the count must match), decord reads the last frame (its size must match).
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from reid.data.datasets.common import count_video_frames
from reid.data.decode import nearest_readable
from reid.data.pack_ledger import PackLedger, PackReport
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


def _load_frames(paths: Sequence[Path]) -> tuple[list[np.ndarray], list[int]]:
    """The frames of `paths` (RGB, at the first readable frame's size), each unreadable one (missing, truncated, not
    an image: decoded in full here, so damage past the header shows) replaced by the nearest readable frame; and the
    indices of the unreadable ones. No frames when none is readable."""
    from PIL import Image

    frames: list[np.ndarray | None] = []
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
        except (OSError, SyntaxError, ValueError):  # PIL raises SyntaxError for some broken headers
            frames.append(None)
    unreadable = [i for i, f in enumerate(frames) if f is None]
    near = nearest_readable([f is not None for f in frames])
    return ([] if near is None else [frames[j] for j in near]), unreadable  # type: ignore[misc]


def padded_size(h: int, w: int) -> tuple[int, int]:
    """Encoded (height, width) of h x w frames: even, and a width decord can read."""
    pw = w + w % 2
    while pw in DECORD_BAD_WIDTHS:
        pw += 2
    return h + h % 2, pw


def encode_frames(paths: Sequence[Path], out: Path,
                  options: PackOptions = PackOptions()) -> tuple[int, int, int, list[int]]:
    """Encode image files (temporal order) into `out` (.mp4), each frame that cannot be read replaced by the nearest
    one that can (so the video keeps the tracklet's length, and frame i is still frame i).

    Returns (frames written, height, width, indices of the unreadable frames): height and width are the frames' size
    before padding to even numbers. With no readable frame, nothing is written: (0, 0, 0, every index)."""
    import av

    if not paths:
        raise ReidError(f"cannot pack {out}: the tracklet has no frames")
    frames, unreadable = _load_frames(paths)
    if not frames:
        return 0, 0, 0, unreadable
    h, w = frames[0].shape[:2]
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
    return len(frames), h, w, unreadable


def _pack_one(job: tuple[str, list[Path], Path, PackOptions]) -> tuple[str, int, int, int, list[int]]:
    """Encode one tracklet into a temporary file beside `out`, check it with both decoders, rename it into place
    (so a video at its final name is always complete and checked)."""
    tid, paths, out, options = job
    tmp = out.with_name(out.stem + ".part" + out.suffix)  # the muxer is chosen by the extension
    n, h, w, unreadable = encode_frames(paths, tmp, options)
    if n == 0:
        return tid, n, h, w, unreadable
    decoded = count_video_frames(tmp, decode=True)
    if decoded != n:
        raise ReidError(f"packing tracklet {tid}: wrote {n} frames to {tmp} but decoding gives {decoded}")
    check_decord(tmp, n, padded_size(h, w))
    os.replace(tmp, out)
    return tid, n, h, w, unreadable


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
                  workers: int = 1, report: PackReport | None = None) -> Manifest:
    """Encode every frame-folder record of `manifest` into `out_dir/videos/<tracklet_id>.mp4`.

    Returns a manifest rooted at `out_dir` whose records name the videos (`video=`, `frame_start=0`, no frames).
    Unreadable frames are replaced by their tracklet's nearest readable frame; a tracklet with none readable is left
    out of the manifest; both go into `report`. Tracklets that an earlier run with the same settings packed are
    kept (`pack_ledger`).
    """
    out_dir = Path(out_dir)
    report = report if report is not None else PackReport()
    for r in manifest.records:
        if r.video is not None or r.keypoints is not None:
            what = "is already a video" if r.video is not None else "has keypoints (pack before estimating them)"
            raise ReidError(f"cannot pack tracklet {r.tracklet_id}: it {what}; --pack video takes frame folders")
    names = _video_names(manifest.records)
    ledger = PackLedger(out_dir / VIDEO_DIR, {"source_root": str(manifest.root.resolve()), **asdict(options)})
    for stale in (out_dir / VIDEO_DIR).glob("*.part.mp4"):  # an interrupted run's; this run holds the lock
        stale.unlink()
    done: dict[str, dict] = {}
    jobs = []
    for r in manifest.records:
        entry = ledger.entry(r.tracklet_id)
        if (entry and entry.get("video") == names[r.tracklet_id] and entry.get("source_frames") == len(r.frames)
                and (entry.get("frames") == 0 or (out_dir / names[r.tracklet_id]).is_file())):
            done[r.tracklet_id] = entry
        else:
            jobs.append((r.tracklet_id, [manifest.resolve(f) for f in r.frames], out_dir / names[r.tracklet_id],
                         options))
    report.reused, report.units = len(done), len(manifest.records)
    if done:
        print(f"[reid] pack: {len(done)} of {len(manifest.records)} tracklets already packed in {out_dir / VIDEO_DIR} "
              f"(an earlier run with the same settings); packing the other {len(jobs)}", flush=True)
    frames_of = {r.tracklet_id: r.frames for r in manifest.records}
    bar = progress_bar(total=len(manifest.records), initial=len(done), desc="pack", unit="tracklets")
    try:
        spawn = multiprocessing.get_context("spawn")  # not forked from a process holding threads (pyarrow's, tqdm's)
        with (ProcessPoolExecutor(max_workers=workers, mp_context=spawn) if workers > 1 and jobs
              else nullcontext()) as pool:
            try:
                results = pool.map(_pack_one, jobs, chunksize=8) if pool is not None else map(_pack_one, jobs)
                for tid, n, h, w, unreadable in results:
                    entry = {"video": names[tid], "frames": n, "size": f"{h}x{w}",
                             "source_frames": len(frames_of[tid]), "dropped": [tid] if n == 0 else [],
                             "unreadable": {tid: [frames_of[tid][i] for i in unreadable]} if unreadable else {}}
                    ledger.add(tid, entry)
                    done[tid] = entry
                    bar.update()
            except BaseException:  # an error or Ctrl-C: stop now rather than encode the rest unrecorded
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        ledger.close()
        bar.close()
    records = []
    for r in manifest.records:
        entry = done[r.tracklet_id]
        report.add(entry)
        if entry["frames"] == 0:
            continue
        records.append(replace(r, video=names[r.tracklet_id], frame_start=0, frames=(), num_frames=entry["frames"],
                               extra={**r.extra, "frame_size": entry["size"]}))
    meta = {**manifest.meta, "packed": options.describe(), "source_root": str(manifest.root.resolve())}
    return Manifest(records=records, root=out_dir, dataset=manifest.dataset, attributes=manifest.attributes,
                    meta=meta)
