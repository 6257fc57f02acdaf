"""Helpers shared by the dataset loaders: path checks that fail with a clear message, numeric frame ordering,
bookkeeping of missing frames / empty tracklets, and the per-role summary printed by `reid prepare`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError

log = logging.getLogger("reid.data")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
MAX_WARNINGS = 20
_DIGITS = re.compile(r"\d+")


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ReidError(f"{what}: expected a directory at {path}")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ReidError(f"{what}: expected a file at {path}")
    return path


def load_mat_var(path: Path, var: str, what: str) -> np.ndarray:
    """One variable of a MATLAB .mat file; a missing file or variable is a ReidError naming both."""
    from scipy.io import loadmat  # scipy import is slow; only .mat-based loaders pay for it

    require_file(path, what)
    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError / MatReadError / OSError for damaged files
        raise ReidError(f"{what}: {path} cannot be read as a .mat file ({type(exc).__name__}: {exc})") from None
    if var not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ReidError(f"{what}: {path} has no variable '{var}' (found {found})")
    return np.asarray(mat[var])


def frame_number(name: str) -> int:
    """The last run of digits in a file name's stem: `cam1_person001_00317.png` -> 317.

    Frame files must be ordered by this number, not as strings: `..._9.png` comes before `..._10.png`.
    """
    digits = _DIGITS.findall(Path(name).stem)
    return int(digits[-1]) if digits else -1


def list_frames(folder: Path, exts: Sequence[str] = IMAGE_EXTS) -> list[str]:
    """Names of the image files in `folder`, in numeric frame order (ties broken by name). One scandir call."""
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file() and e.name.lower().endswith(tuple(exts))]
    return sorted(names, key=lambda n: (frame_number(n), n))


def sorted_subdirs(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir())


def trailing_int(name: str, what: str, path: Path) -> int:
    digits = _DIGITS.findall(name)
    if not digits:
        raise ReidError(f"{what}: cannot read a number from the folder name '{name}' in {path}")
    return int(digits[-1])


@dataclass
class LoadStats:
    """What a loader skipped: frames named by the annotations but absent, tracklets left with no frames."""

    missing_frames: int = 0
    empty_tracklets: int = 0
    missing_examples: list[str] = field(default_factory=list)
    warnings: int = 0

    def _warn(self, msg: str, *args: object) -> None:
        # the first few individually; the totals go to the summary (a damaged MARS copy could log thousands)
        self.warnings += 1
        if self.warnings <= MAX_WARNINGS:
            log.warning(msg, *args)
        if self.warnings == MAX_WARNINGS:
            log.warning("further missing frames / empty tracklets are only counted (see the summary)")

    def frames_missing(self, tracklet_id: str, count: int, example: str) -> None:
        if count <= 0:
            return
        self.missing_frames += count
        if len(self.missing_examples) < 5:
            self.missing_examples.append(example)
        self._warn("tracklet %s: %d frame(s) missing on disk (e.g. %s); skipped", tracklet_id, count, example)

    def tracklet_missing(self, tracklet_id: str, where: object) -> None:
        self.empty_tracklets += 1
        self._warn("tracklet %s: %s does not exist; dropped", tracklet_id, where)

    def keep(self, record: TrackletRecord) -> bool:
        """False (and counted) for a tracklet without frames: it is dropped from the manifest."""
        if record.num_frames > 0:
            return True
        self.empty_tracklets += 1
        self._warn("tracklet %s has no frames; dropped", record.tracklet_id)
        return False

    def to_meta(self) -> dict[str, str]:
        return {"missing_frames": str(self.missing_frames), "empty_tracklets": str(self.empty_tracklets)}


def frames_record(*, tracklet_id: str, pid: int, camid: int, dataset: str, role: str, rel_dir: str,
                  names: Sequence[str], tracklet_no: int = 0, extra: dict[str, str] | None = None) -> TrackletRecord:
    """A record whose frames are the files `names` (already in temporal order) inside `rel_dir`."""
    frames = tuple(f"{rel_dir}/{n}" for n in names)
    return TrackletRecord(tracklet_id=tracklet_id, pid=int(pid), camid=int(camid), dataset=dataset, role=role,
                          num_frames=len(frames), frames=frames, tracklet_no=int(tracklet_no), extra=extra or {})


def check_trial(trial: int, num_trials: int, source: Path) -> int:
    if not 0 <= int(trial) < num_trials:
        raise ReidError(f"trial {trial} does not exist: {source} defines trials 0..{num_trials - 1}")
    return int(trial)


def _pid_list(meta: dict[str, str], key: str) -> set[int]:
    return {int(p) for p in meta.get(key, "").split(",") if p.strip()}


def summarize(manifest: Manifest) -> dict:
    """Identities / tracklets / frames per role, plus what the loader skipped.

    Identities exclude the pids the manifest marks as distractor / junk (MARS: 0 and -1); those are counted as
    tracklets of their own.
    """
    distractor = _pid_list(manifest.meta, "distractor_pids")
    junk = _pid_list(manifest.meta, "junk_pids")
    roles: dict[str, dict[str, int]] = {}
    order = ("train", "query", "gallery", "unused")
    for role in order:
        recs = [r for r in manifest.records if r.role == role]
        if not recs:
            continue
        roles[role] = _counts(recs, distractor, junk)
    summary = {
        "dataset": manifest.dataset,
        "roles": roles,
        "total": _counts(manifest.records, distractor, junk),
        "missing_frames": int(manifest.meta.get("missing_frames", 0)),
        "empty_tracklets_dropped": int(manifest.meta.get("empty_tracklets", 0)),
        "with_attributes": sum(r.attributes is not None for r in manifest.records),
    }
    for key in ("protocol", "trial", "splits"):
        if key in manifest.meta:
            summary[key] = manifest.meta[key]
    return summary


def _counts(recs: Iterable[TrackletRecord], distractor: set[int], junk: set[int]) -> dict[str, int]:
    recs = list(recs)
    out = {
        "identities": len({r.pid for r in recs if r.pid not in distractor and r.pid not in junk}),
        "tracklets": len(recs),
        "frames": sum(r.num_frames for r in recs),
    }
    if distractor:
        out["distractor_tracklets"] = sum(r.pid in distractor for r in recs)
    if junk:
        out["junk_tracklets"] = sum(r.pid in junk for r in recs)
    return out


def format_summary(summary: dict) -> str:
    """The summary as an aligned text table (one row per role, then the total)."""
    extra_cols = [c for c in ("distractor_tracklets", "junk_tracklets") if c in summary["total"]]
    cols = ["identities", "tracklets", "frames", *extra_cols]
    header = ["role", *cols]
    rows = [[role, *(str(c.get(k, 0)) for k in cols)] for role, c in summary["roles"].items()]
    rows.append(["total", *(str(summary["total"].get(k, 0)) for k in cols)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"dataset: {summary['dataset']}"]
    for key in ("protocol", "trial", "splits"):
        if key in summary:
            notes.append(f"{key}: {summary[key]}")
    notes.append(f"missing frames skipped: {summary['missing_frames']}; "
                 f"empty tracklets dropped: {summary['empty_tracklets_dropped']}; "
                 f"tracklets with attributes: {summary['with_attributes']}")
    return "\n".join([*lines, *notes])


VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def count_video_frames(path: Path, decode: bool = False) -> int:
    """Frames in the first video stream of `path`: the container's count, or by decoding when it has none or
    `decode` is set (decoding is the only count that can be trusted after writing a file)."""
    import av  # PyAV is only needed for video sources

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ReidError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if stream.frames and not decode:
                return int(stream.frames)
            return sum(1 for _ in container.decode(stream))
    except av.FFmpegError as exc:
        raise ReidError(f"{path} cannot be read as a video ({exc})") from None
