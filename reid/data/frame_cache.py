"""Local copies of a bucket's frame files for the readers that need a path: decord (videos), `np.load` (keypoints).

A dataset root in a bucket (`Manifest.remote`) is read without a shared file system: JPEG-store shards through
`pyarrow.fs` ranged reads (`jpeg_store.ShardReader`, no copy), frame files as bytes, and videos and keypoints files
fetched whole into this cache on first use. decord opens files by path only (its file-object input reads the whole
stream into memory anyway), and an epoch samples every training tracklet again, so a kept copy saves one GET per
tracklet per epoch.

One cache per decoding process (a Ray Data actor, an in-process `Decoder`): its own temporary directory, removed
when the process closes it, so no two processes ever evict each other's files. A process that Ray ends without
closing it (`ray.kill`, a crash) leaves its directory behind, up to `max_bytes` of videos; its name says which host
and process made it (`reid-frames-<host>.<pid namespace>+<pid>-...`), and the next cache made there removes the
directories of processes that no longer exist. Least recently used files are
evicted past `max_bytes` (the file being fetched is always kept, however large). Cost: a bucket-backed video epoch
re-reads nothing after the first epoch as long as `max_bytes` holds the actor's share of the videos; past that,
every evicted video is one more GET.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from collections import OrderedDict
from pathlib import Path, PurePosixPath

from reid import storage
from reid.errors import ReidError

DEFAULT_MAX_BYTES = 4 << 30


class FetchError(ReidError):
    """A file that could not be fetched from its bucket (missing, no access); the Decoder counts it unreadable."""


def owner_prefix() -> str:
    """`reid-frames-<host>.<pid namespace>+`: the start of the names of the cache directories whose processes can be
    looked up from here (then `<pid>-<random>`). A host name has no `+`, so no other host's names start the same;
    the PID namespace (Linux: the inode of /proc/self/ns/pid) tells apart containers that share a host name and a
    temporary folder but not their process ids."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: the host alone
        namespace = 0
    return f"reid-frames-{socket.gethostname()}.{namespace}+"


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphans(parent: Path) -> list[Path]:
    """Remove the cache directories under `parent` that processes of this host made and that no longer exist there
    (killed before they closed their cache); returns them. Another host's directories (a shared temporary folder)
    are left alone: their processes cannot be looked up from here."""
    prefix = owner_prefix()
    removed = []
    for d in parent.glob(prefix + "*"):
        pid = d.name[len(prefix):].split("-", 1)[0]
        if d.is_dir() and pid.isdigit() and not process_exists(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


class FrameCache:
    """URI -> local file, fetched on first use, LRU-evicted past `max_bytes`; local paths pass through unchanged."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, directory: str | Path | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self._parent = directory
        self._dir: Path | None = None
        self._files: OrderedDict[str, tuple[Path, int]] = OrderedDict()
        self.fetched = 0  # files downloaded so far (a cache hit does not count)
        self.fetched_bytes = 0

    @property
    def directory(self) -> Path:
        if self._dir is None:
            parent = Path(self._parent or tempfile.gettempdir())
            remove_orphans(parent)
            self._dir = Path(tempfile.mkdtemp(prefix=f"{owner_prefix()}{os.getpid()}-", dir=parent))
        return self._dir

    def path(self, location: str | Path) -> Path:
        """A local path with the file's bytes; raises FetchError when the file is missing or unreadable."""
        if not storage.is_uri(location):
            return Path(location)
        key = str(location)
        if key in self._files:
            self._files.move_to_end(key)
            return self._files[key][0]
        suffix = PurePosixPath(key).suffix[:16]  # decord guesses nothing from it, but a person reading the dir can
        local = self.directory / (hashlib.sha1(key.encode()).hexdigest()[:20] + suffix)
        try:
            storage.download(key, local)
        except (ReidError, OSError) as exc:
            raise FetchError(f"cannot fetch {key}: {str(exc).splitlines()[0][:200]}") from None
        size = local.stat().st_size
        self._files[key] = (local, size)
        self.fetched += 1
        self.fetched_bytes += size
        self._evict(keep=key)
        return local

    def _evict(self, keep: str) -> None:
        total = sum(size for _, size in self._files.values())
        for key in list(self._files):
            if total <= self.max_bytes:
                return
            if key == keep:
                continue
            local, size = self._files.pop(key)
            local.unlink(missing_ok=True)
            total -= size

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self._files.clear()
