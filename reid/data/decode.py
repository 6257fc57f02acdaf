"""Frame decoding: decord for video files, PIL for frame files, with a time bound on every video decode.

One tracklet = one `VideoReader` opened where it is used (never carried across a fork) with `num_threads=1`, and
ONE batched random-access `get_batch` over the tracklet's sorted unique frames.

Time bounds: decord's `get_batch` can spin forever when a container over-reports its frame count (dmlc/decord#373)
and cannot be interrupted from Python. A `Decoder` bounds every video decode in one of two ways:
- `on_hang` given (inside Ray's decoding actors): decord runs in THIS process, so frames go from the decoder into the
  batch with no copy through a pipe; a watchdog thread (`HangWatchdog`) ends the process when one decode runs past
  `timeout_s`, after `on_hang(tag, message)` has recorded the tracklet as unreadable. Ray restarts the actor and
  retries its task, and the new actor skips the recorded tracklet. (decord calls its C library through ctypes, which
  releases the GIL, so the watchdog runs while a decode hangs.)
- no `on_hang` (in-process training, tests, DataLoader workers, where ending the process is not an option): decord
  runs in a long-lived child interpreter (started with `subprocess`, so nothing is forked from a process that holds
  readers); the caller waits for each tracklet at most `timeout_s` seconds, then kills the child, starts a fresh one
  on the next request and raises `DecodeTimeout`, so the caller can skip the tracklet instead of hanging.
Indices are also clamped to `len(vr)` and to the manifest's frame range before any decode.

A dataset root in a bucket (`Manifest.remote`): `read_frames` names files with `Manifest.locate`; the Decoder reads
JPEG shards through `pyarrow.fs` ranged reads, frame files as bytes, and fetches videos and keypoints into its own
`FrameCache` (decord needs a path). A file missing from the bucket is a DecodeError like a missing local file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reid.data.video_libs import decord as load_decord
from reid.errors import ReidError

if TYPE_CHECKING:  # the decoding child imports this module: keep pyarrow out of its start-up
    from reid.data.records import Manifest, TrackletRecord

log = logging.getLogger(__name__)


class DecodeError(ReidError):
    """A tracklet whose frames could not be read (corrupt, missing or unreadable file)."""


class DecodeTimeout(DecodeError):
    """A video decode that did not finish within the time bound."""


def video_indices(num_in_file: int, frame_start: int, num_frames: int, indices: np.ndarray) -> np.ndarray:
    """Absolute frame numbers in the file for tracklet-relative `indices`, clamped to what the file holds.

    Args:
        num_in_file: `len(VideoReader)`; decord can hang when asked for frames past the decodable end.
        frame_start, num_frames: the tracklet's frame range from the manifest.
        indices: int [T] positions inside the tracklet.
    """
    last = min(frame_start + num_frames, num_in_file) - 1
    if last < frame_start:
        raise DecodeError(f"the video holds {num_in_file} frames, the tracklet starts at frame {frame_start}")
    return np.clip(frame_start + np.asarray(indices, dtype=np.int64), frame_start, last)


def nearest_readable(readable: Sequence[bool]) -> list[int] | None:
    """For each frame, the index of the nearest readable frame (itself when readable; the earlier one on a tie);
    None when no frame is. The rule every store follows where a frame is replaced rather than its tracklet:
    `reid prepare --pack` (pack.py, jpeg_store.py) and the trainer's nvJPEG fallback (device_decode.decode_each)."""
    good = [i for i, ok in enumerate(readable) if ok]
    if not good:
        return None
    return [min(good, key=lambda j, i=i: (abs(j - i), j)) for i in range(len(readable))]


def decode_video_inline(path: str | Path, frame_start: int, num_frames: int, indices: np.ndarray) -> np.ndarray:
    """Decode frames `indices` (tracklet-relative) of a video in this process: uint8 [T, H, W, 3] RGB."""
    decord = load_decord()
    DECORDError = decord.DECORDError

    try:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except (DECORDError, RuntimeError, OSError) as exc:
        raise DecodeError(f"cannot open video {path}: {str(exc).splitlines()[0][:200]}") from None
    n = len(vr)
    if n < frame_start + num_frames:
        log.warning("video %s holds %d frames, the manifest says %d from frame %d; clamping", path, n,
                    num_frames, frame_start)
    absolute = video_indices(n, frame_start, num_frames, indices)
    uniq, inverse = np.unique(absolute, return_inverse=True)  # sorted access: decord seeks forward only
    try:
        frames = vr.get_batch(uniq.tolist()).asnumpy()
    except (DECORDError, RuntimeError) as exc:
        raise DecodeError(f"cannot decode frames of {path}: {str(exc).splitlines()[0][:200]}") from None
    del vr
    if len(uniq) == len(absolute) and np.all(inverse == np.arange(len(uniq))):
        return frames  # already in order, no repeats: skip the copy
    return frames[inverse]


def decode_pil(sources: Sequence[str | Path | bytes], draft_size: tuple[int, int] | None = None,
               error: type[DecodeError] = DecodeError, out: np.ndarray | None = None) -> np.ndarray:
    """Images (files, or encoded bytes): uint8 [N, H, W, 3] RGB. Frames of another size are resized to the first
    one's. `out`: a C-contiguous uint8 [N, H, W, 3] to decode into, used (and returned) when the first frame has that
    size; its content is undefined after a call that returns another array.

    JPEG goes through libjpeg-turbo directly (jpeg_decode.py: Pillow's pixels in half the time); Pillow decodes
    everything else, and any JPEG the fast path hands back (damaged, CMYK). `draft_size` (h, w): decode JPEG at a
    reduced DCT scale (1/2, 1/4, 1/8) as long as the result stays at least that large (the caller resizes to its
    exact output size anyway).
    """
    from PIL import Image, UnidentifiedImageError

    from reid.data import jpeg_decode

    fast = jpeg_decode.available()
    given = out if out is not None and out.shape[0] == len(sources) and out.dtype == np.uint8 else None
    out = None  # [N, H, W, 3]: `given` or a new array, chosen at the first frame; later frames decode into it
    for i, src in enumerate(sources):
        what = f"frame {i} is not a readable JPEG" if isinstance(src, bytes) else f"cannot read frame {src}"
        try:
            data = src
            if fast and not isinstance(src, bytes) and str(src).lower().endswith((".jpg", ".jpeg")):
                data = Path(src).read_bytes()
            frame = None
            slot = out[i] if out is not None else given[0] if given is not None else None
            if fast and isinstance(data, bytes) and jpeg_decode.is_jpeg(data):
                frame = jpeg_decode.decode_jpeg_rgb(data, draft_size, out=slot)
            if frame is None:
                with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
                    if draft_size is not None:
                        im.draft("RGB", (draft_size[1], draft_size[0]))
                    im.load()
                    frame = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
            if out is None:
                fits = given is not None and given.shape[1:] == frame.shape
                out = given if fits else np.empty((len(sources), *frame.shape), dtype=np.uint8)
            elif frame.shape[:2] != out.shape[1:3]:
                frame = np.asarray(Image.fromarray(frame).resize((out.shape[2], out.shape[1]), Image.BILINEAR))
            if frame is not slot:  # a frame decoded straight into its slot is not copied again
                out[i] = frame
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise error(f"{what} ({exc})") from None
    if out is None:
        raise error("no frames to decode")
    return out


def decode_images(paths: list[Path]) -> np.ndarray:
    """Load frame files with PIL: uint8 [T, H, W, 3] RGB (frames of another size are resized to the first's)."""
    return decode_pil(paths)


def _serve(fd: int) -> None:
    """Child loop: receive (path, frame_start, num_frames, indices), send ("ok", frames) or ("error", message)."""
    conn = Connection(fd)
    load_decord()  # before "ready", so start-up never counts against a decode's time bound

    conn.send(("ready", None))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        try:
            conn.send(("ok", decode_video_inline(*request)))
        except DecodeError as exc:
            conn.send(("error", str(exc)))
        except Exception as exc:  # report anything else as unreadable rather than dying
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


_PIPELINE = 64  # requests in flight per round trip to the decoding child
_STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class VideoRequest:
    """Frames `indices` (tracklet-relative, int [T]) of the tracklet at `frame_start` .. + `num_frames` of `path`.

    `tag` names the request for a hang report (the record index in a manifest; -1 = none).
    """

    path: Path
    frame_start: int
    num_frames: int
    indices: np.ndarray
    tag: int = -1


HangHandler = Callable[[int, str], None]
_EXIT_ON_HANG = 75  # the exit status of a process ended by the watchdog (EX_TEMPFAIL)


class HangWatchdog:
    """Ends the process when one guarded block runs longer than `timeout_s` (after calling `on_hang(tag, message)`).

    For processes that a supervisor restarts (Ray actors): a decode stuck inside C code cannot be interrupted, but
    the process can end. `on_hang` must record the culprit where the restarted process will find it.
    """

    def __init__(self, timeout_s: float, on_hang: HangHandler) -> None:
        self.timeout_s, self.on_hang = float(timeout_s), on_hang
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._what: tuple[int, str] = (-1, "")
        self._thread = threading.Thread(target=self._watch, name="reid-decode-watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def guard(self, tag: int, what: str) -> Iterator[None]:
        with self._lock:
            self._deadline, self._what = time.monotonic() + self.timeout_s, (tag, what)
        try:
            yield
        finally:
            with self._lock:
                self._deadline = None

    def _watch(self) -> None:
        tick = min(1.0, self.timeout_s / 4)
        while True:
            time.sleep(tick)
            with self._lock:
                late = self._deadline is not None and time.monotonic() > self._deadline
                tag, what = self._what
            if late:
                message = (f"decoding {what} took longer than {self.timeout_s:g} s; the file is probably corrupt "
                           f"(decord can spin forever on such files)")
                log.error("%s; ending this decoding process so that it is restarted without it", message)
                try:
                    self.on_hang(tag, message)
                finally:
                    os._exit(_EXIT_ON_HANG)


_CHILD_CODE = "import sys; from reid.data.decode import _serve; _serve(int(sys.argv[1]))"


def _unguarded(tag: int, what: str) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class Decoder:
    """Reads a tracklet's frames; video decodes are time-bounded by a helper process when `timeout_s` is set.

    Create one per worker process (a Ray actor, a DataLoader worker); it is not picklable and not thread-safe.
    """

    def __init__(self, timeout_s: float | None = 60.0, on_hang: HangHandler | None = None) -> None:
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._owner = os.getpid()
        # in-process decoding under a watchdog that ends the process (see the module docstring)
        self._watchdog = HangWatchdog(timeout_s, on_hang) if (on_hang is not None and timeout_s) else None
        self._shards = None  # jpeg_store.ShardReader, opened on the first JPEG-store record
        self.draft_size: tuple[int, int] | None = None  # JPEG store: decode at a reduced DCT scale down to this
        self.cache_bytes: int | None = None  # FrameCache size for a dataset root in a bucket (None: its default)
        self._cache = None  # frame_cache.FrameCache, made on the first file fetched from a bucket

    def local_file(self, location: str | Path) -> Path:
        """A local path for a file a record names: itself, or a copy fetched from a bucket (raises DecodeError)."""
        if "://" not in str(location):
            return Path(location)
        from reid.data.frame_cache import DEFAULT_MAX_BYTES, FetchError, FrameCache

        if self._cache is None:
            self._cache = FrameCache(self.cache_bytes or DEFAULT_MAX_BYTES)
        try:
            return self._cache.path(location)
        except FetchError as exc:
            raise DecodeError(str(exc)) from None

    def jpeg(self, manifest: Manifest, record: TrackletRecord, indices: np.ndarray,
             out: np.ndarray | None = None) -> np.ndarray:
        """uint8 [T, H, W, 3] of a JPEG-store record (no time bound needed: JPEG decoding cannot spin); decoded into
        `out` when it fits (`read_jpeg_frames`)."""
        from reid.data.jpeg_store import ShardReader, read_jpeg_frames

        if self._shards is None:
            self._shards = ShardReader()
        return read_jpeg_frames(manifest, record, indices, self._shards, self.draft_size, out)

    def jpeg_blobs(self, manifest: Manifest, record: TrackletRecord, indices: np.ndarray) -> list[bytes]:
        """The undecoded JPEG bytes of frames `indices` of a JPEG-store record (`jpeg_store.read_jpeg_blobs`)."""
        from reid.data.jpeg_store import ShardReader, read_jpeg_blobs

        if self._shards is None:
            self._shards = ShardReader()
        return read_jpeg_blobs(manifest, record, indices, self._shards)

    def _start(self) -> None:
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
        self._proc = subprocess.Popen([sys.executable, "-c", _CHILD_CODE, str(child.fileno())],
                                      pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL)
        child.close()
        self._conn = Connection(parent.detach())
        self._owner = os.getpid()
        try:
            ready = self._conn.poll(_STARTUP_TIMEOUT_S) and self._conn.recv()[0] == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._stop(kill=True)
            raise DecodeError(f"the decoding process ({sys.executable}) did not start within "
                              f"{_STARTUP_TIMEOUT_S:g} s; is decord importable?")

    def _stop(self, kill: bool) -> None:
        if self._proc is None:
            return
        if kill:
            self._proc.kill()
        else:
            try:
                self._conn.send(None)
            except OSError:
                pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        if self._owner == os.getpid():
            self._stop(kill=False)
            if self._cache is not None:
                self._cache.close()

    def __del__(self) -> None:  # best effort: never leave a decoding child behind
        try:
            self.close()
        except Exception:
            pass

    def video(self, path: str | Path, frame_start: int, num_frames: int, indices: np.ndarray,
              tag: int = -1) -> np.ndarray:
        """uint8 [T, H, W, 3] for tracklet-relative `indices`; raises DecodeError / DecodeTimeout."""
        out = self.videos([VideoRequest(Path(path), frame_start, num_frames, indices, tag)])[0]
        if isinstance(out, DecodeError):
            raise out
        return out

    def videos(self, requests: list[VideoRequest]) -> list[np.ndarray | DecodeError]:
        """Decode many tracklets; each result is frames uint8 [T, H, W, 3] or the DecodeError it raised.

        Requests are pipelined to the child (one round trip per chunk, not per tracklet) and every answer is
        awaited at most `timeout_s`; after a time-out or a crash the child is replaced and the rest resubmitted.
        """
        if self.timeout_s is None or self._watchdog is not None:
            results: list[np.ndarray | DecodeError] = []
            guard = self._watchdog.guard if self._watchdog is not None else _unguarded
            for r in requests:
                try:
                    with guard(r.tag, str(r.path)):
                        results.append(decode_video_inline(r.path, r.frame_start, r.num_frames, r.indices))
                except DecodeError as exc:
                    results.append(exc)
            return results
        results = [DecodeError("not decoded")] * len(requests)
        pending = list(range(len(requests)))
        while pending:
            chunk, pending = pending[:_PIPELINE], pending[_PIPELINE:]
            done = self._exchange([requests[i] for i in chunk])
            for i, res in zip(chunk, done, strict=False):
                results[i] = res
            pending = chunk[len(done):] + pending  # left over after a time-out or a crash
        return results

    def _exchange(self, requests: list[VideoRequest]) -> list[np.ndarray | DecodeError]:
        """Send a chunk, collect answers in order; stops after the first time-out / crash (that one included)."""
        if self._proc is None or self._owner != os.getpid() or self._proc.poll() is not None:
            self._proc = self._conn = None  # a child inherited over a fork is not ours to talk to
            self._start()
        out: list[np.ndarray | DecodeError] = []
        for retry in (True, False):  # a child that died since the last chunk gets one replacement
            try:
                for r in requests:  # small messages: the socket buffer takes the whole chunk without blocking
                    self._conn.send((str(r.path), int(r.frame_start), int(r.num_frames),
                                     np.asarray(r.indices, dtype=np.int64)))
                break
            except OSError as exc:
                self._stop(kill=True)
                if not retry:
                    return [DecodeError(f"decoder process failed on {requests[0].path}: {exc}")]
                self._start()
        for r in requests:
            if not self._conn.poll(self.timeout_s):
                self._stop(kill=True)
                out.append(DecodeTimeout(f"decoding {r.path} took longer than {self.timeout_s:g} s; the file is "
                                         f"probably corrupt (decord can spin forever on such files)"))
                return out
            try:
                status, payload = self._conn.recv()
            except (EOFError, OSError):
                self._stop(kill=True)
                out.append(DecodeError(f"decoder process died while decoding {r.path}"))
                return out
            out.append(payload if status == "ok" else DecodeError(payload))
        return out

    def images(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Frame files (local paths, or URIs read as bytes): uint8 [N, H, W, 3]."""
        if not any("://" in str(p) for p in paths):
            return decode_images(list(paths))
        from reid import storage

        sources: list[str | Path | bytes] = []
        for p in paths:
            try:
                sources.append(storage.read_bytes(p) if "://" in str(p) else p)
            except (ReidError, OSError) as exc:
                raise DecodeError(f"cannot read frame {p}: {exc}") from None
        return decode_pil(sources)


def read_frames(manifest: Manifest, record: TrackletRecord, indices: np.ndarray, decoder: Decoder,
                tag: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """Frames `indices` (tracklet-relative) of one record: uint8 [T, H, W, 3] RGB; raises DecodeError.

    `tag` (the record's index) names the tracklet in a hang report. `out`: a C-contiguous uint8 [T, H, W, 3] that a
    JPEG store's frames decode into (returned) when they have that size and are distinct; else a new array."""
    if record.shard:
        return decoder.jpeg(manifest, record, indices, out)
    if record.video:
        video = decoder.local_file(manifest.locate(record.video))
        return decoder.video(video, record.frame_start, record.num_frames, indices, tag)
    if record.frames:
        clipped = np.clip(np.asarray(indices, dtype=np.int64), 0, len(record.frames) - 1)
        uniq, inverse = np.unique(clipped, return_inverse=True)
        frames = decoder.images([manifest.locate(record.frames[int(i)]) for i in uniq])
        return frames[inverse]
    raise DecodeError(f"tracklet {record.tracklet_id} names neither a video, frame files nor a JPEG shard")
