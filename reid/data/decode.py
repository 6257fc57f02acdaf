"""Frame decoding: decord for video files, PIL for frame files, with a time bound on every video decode.

One tracklet = one `VideoReader` opened where it is used (never carried across a fork) with `num_threads=1`, and
ONE batched random-access `get_batch` over the tracklet's sorted unique frames.

Why a helper process: decord's `get_batch` can spin forever when a container over-reports its frame count
(dmlc/decord#373) and cannot be interrupted from Python. With `timeout_s` set, a `Decoder` runs decord in a
long-lived child interpreter (started with `subprocess`, so nothing is forked from a process that holds readers) and
waits for each tracklet at most `timeout_s` seconds; on expiry it kills the child, starts a fresh one on the next
request, and raises `DecodeTimeout`, so the caller can skip the tracklet instead of hanging. Indices are also clamped
to `len(vr)` and to the manifest's frame range before any decode.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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


def decode_video_inline(path: str | Path, frame_start: int, num_frames: int, indices: np.ndarray) -> np.ndarray:
    """Decode frames `indices` (tracklet-relative) of a video in this process: uint8 [T, H, W, 3] RGB."""
    from decord import DECORDError, VideoReader, cpu

    try:
        vr = VideoReader(str(path), ctx=cpu(0), num_threads=1)
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


def decode_images(paths: list[Path]) -> np.ndarray:
    """Load frame files with PIL: uint8 [T, H, W, 3] RGB (frames of another size are resized to the first's)."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if out and im.size != (out[0].shape[1], out[0].shape[0]):
                    im = im.resize((out[0].shape[1], out[0].shape[0]), Image.BILINEAR)
                out.append(np.asarray(im))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DecodeError(f"cannot read frame {p}: {exc}") from None
    return np.stack(out)


def _serve(fd: int) -> None:
    """Child loop: receive (path, frame_start, num_frames, indices), send ("ok", frames) or ("error", message)."""
    conn = Connection(fd)
    import decord  # noqa: F401  (imported before "ready", so start-up never counts against a decode's time bound)

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
    """Frames `indices` (tracklet-relative, int [T]) of the tracklet at `frame_start` .. + `num_frames` of `path`."""

    path: Path
    frame_start: int
    num_frames: int
    indices: np.ndarray


_CHILD_CODE = "import sys; from reid.data.decode import _serve; _serve(int(sys.argv[1]))"


class Decoder:
    """Reads a tracklet's frames; video decodes are time-bounded by a helper process when `timeout_s` is set.

    Create one per worker process (a Ray actor, a DataLoader worker); it is not picklable and not thread-safe.
    """

    def __init__(self, timeout_s: float | None = 60.0) -> None:
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._owner = os.getpid()

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

    def __del__(self) -> None:  # best effort: never leave a decoding child behind
        try:
            self.close()
        except Exception:
            pass

    def video(self, path: str | Path, frame_start: int, num_frames: int, indices: np.ndarray) -> np.ndarray:
        """uint8 [T, H, W, 3] for tracklet-relative `indices`; raises DecodeError / DecodeTimeout."""
        out = self.videos([VideoRequest(Path(path), frame_start, num_frames, indices)])[0]
        if isinstance(out, DecodeError):
            raise out
        return out

    def videos(self, requests: list[VideoRequest]) -> list[np.ndarray | DecodeError]:
        """Decode many tracklets; each result is frames uint8 [T, H, W, 3] or the DecodeError it raised.

        Requests are pipelined to the child (one round trip per chunk, not per tracklet) and every answer is
        awaited at most `timeout_s`; after a time-out or a crash the child is replaced and the rest resubmitted.
        """
        if self.timeout_s is None:
            results: list[np.ndarray | DecodeError] = []
            for r in requests:
                try:
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

    def images(self, paths: list[Path]) -> np.ndarray:
        return decode_images(paths)


def read_frames(manifest: Manifest, record: TrackletRecord, indices: np.ndarray, decoder: Decoder) -> np.ndarray:
    """Frames `indices` (tracklet-relative) of one record: uint8 [T, H, W, 3] RGB; raises DecodeError."""
    if record.video:
        return decoder.video(manifest.resolve(record.video), record.frame_start, record.num_frames, indices)
    if record.frames:
        clipped = np.clip(np.asarray(indices, dtype=np.int64), 0, len(record.frames) - 1)
        uniq, inverse = np.unique(clipped, return_inverse=True)
        frames = decoder.images([manifest.resolve(record.frames[int(i)]) for i in uniq])
        return frames[inverse]
    raise DecodeError(f"tracklet {record.tracklet_id} names neither a video nor frame files")
