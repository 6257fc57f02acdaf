"""Users' own data, in one of two documented layouts (see docs/datasets.md).

Folder layout:
    <root>/<split>/<pid>/<camid>/<tracklet>/*.{jpg,jpeg,png,bmp}
with split in train / query / gallery, pid and camid integers (pid may be negative, e.g. -1 for junk), tracklet any
folder name (its trailing number, if any, becomes `tracklet_no`). Frames are ordered by the last number in their
file name.

CSV layout: `<root>/tracklets.csv` (or any file passed as `csv=`) with the header
    tracklet_id,pid,camid,role,path
and optionally `frame_start`, `num_frames`, `tracklet_no` and attribute columns named as in the MARS / Duke CSVs
(`gender`, `top color`, ...; empty or -1 = unknown). `path` is relative to the root and names a frame folder or a
video file (.mp4/.avi/.mkv/.mov/.webm); for a video, `frame_start` / `num_frames` select a clip (default: all).
"""

from __future__ import annotations

import csv as csvlib
from dataclasses import replace
from pathlib import Path

from reid.data.attributes import COLUMN_GROUPS, schema_from_columns
from reid.data.datasets.common import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    LoadStats,
    count_video_frames,
    frames_record,
    list_frames,
    require_dir,
    require_file,
    sorted_subdirs,
)
from reid.data.records import ROLES, Manifest, TrackletRecord
from reid.errors import ReidError

SPLITS = ("train", "query", "gallery")
CSV_NAME = "tracklets.csv"
CSV_REQUIRED = ("tracklet_id", "pid", "camid", "role", "path")
CSV_OPTIONAL = ("frame_start", "num_frames", "tracklet_no")


def _int_dir(name: str, what: str, parent: Path) -> int:
    try:
        return int(name)
    except ValueError:
        raise ReidError(f"generic layout: {what} folder '{name}' in {parent} is not an integer "
                        f"(expected <root>/<split>/<pid>/<camid>/<tracklet>/)") from None


def _tracklet_no(name: str) -> int:
    digits = "".join(ch if ch.isdigit() else " " for ch in name).split()
    return int(digits[-1]) if digits else 0


def load_folders(root: Path, stats: LoadStats) -> list[TrackletRecord]:
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        raise ReidError(f"generic dataset: expected {root / CSV_NAME} or at least one of "
                        f"{[str(root / s) for s in SPLITS]} (layout <split>/<pid>/<camid>/<tracklet>/*.jpg)")
    records = []
    for split in present:
        for pid_dir in sorted_subdirs(root / split):
            pid = _int_dir(pid_dir, "pid", root / split)
            for cam_dir in sorted_subdirs(root / split / pid_dir):
                camid = _int_dir(cam_dir, "camid", root / split / pid_dir)
                for tdir in sorted_subdirs(root / split / pid_dir / cam_dir):
                    rel = f"{split}/{pid_dir}/{cam_dir}/{tdir}"
                    rec = frames_record(tracklet_id=f"{split}-{pid_dir}-{cam_dir}-{tdir}", pid=pid, camid=camid,
                                        dataset="generic", role=split, rel_dir=rel,
                                        names=list_frames(root / rel, IMAGE_EXTS), tracklet_no=_tracklet_no(tdir))
                    if stats.keep(rec):
                        records.append(rec)
    return records


def _int_field(row: dict[str, str], key: str, where: str) -> int:
    try:
        return int(row[key])
    except (TypeError, ValueError):
        raise ReidError(f"{where}: column '{key}' must be an integer, got {row.get(key)!r}") from None


def _relative(root: Path, path: str, where: str) -> str:
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ReidError(f"{where}: path {p} is outside the dataset root {root}; paths must lie under the root") from None


def _csv_record(root: Path, row: dict[str, str], attr_cols: list[str], where: str,
                stats: LoadStats) -> TrackletRecord | None:
    role = row["role"].strip()
    if role not in ROLES:
        raise ReidError(f"{where}: role '{role}' is not one of {ROLES}")
    rel = _relative(root, row["path"].strip(), where)
    target = root / rel
    common = dict(tracklet_id=row["tracklet_id"].strip(), pid=_int_field(row, "pid", where),
                  camid=_int_field(row, "camid", where), dataset="generic", role=role,
                  tracklet_no=_int_field(row, "tracklet_no", where) if row.get("tracklet_no") else 0)
    attrs = {c: int(row[c]) for c in attr_cols if row.get(c, "").strip() not in ("", "-1")}
    if target.is_dir():
        rec = frames_record(rel_dir=rel.rstrip("/"), names=list_frames(target, IMAGE_EXTS), **common)
    elif target.is_file() and target.suffix.lower() in VIDEO_EXTS:
        start = _int_field(row, "frame_start", where) if row.get("frame_start") else 0
        total = count_video_frames(target)
        n = _int_field(row, "num_frames", where) if row.get("num_frames") else total - start
        if start < 0 or n < 0 or start + n > total:
            raise ReidError(f"{where}: frames {start}..{start + n - 1} requested but {target} has {total} frames")
        rec = TrackletRecord(video=rel, frame_start=start, num_frames=n, **common)
    elif target.exists():
        raise ReidError(f"{where}: {target} is neither a frame folder nor a video file ({', '.join(VIDEO_EXTS)})")
    else:
        stats.tracklet_missing(common["tracklet_id"], f"{target} ({where})")
        return None
    if attrs:
        rec = replace(rec, attributes=attrs)
    return rec if stats.keep(rec) else None


def load_csv(root: Path, csv_path: Path, stats: LoadStats) -> tuple[list[TrackletRecord], dict[str, int]]:
    require_file(csv_path, "generic dataset CSV")
    with csv_path.open(newline="") as fh:
        reader = csvlib.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_REQUIRED if c not in header]
        if missing:
            raise ReidError(f"{csv_path}: missing columns {missing}; expected header {','.join(CSV_REQUIRED)} "
                            f"(optional: {', '.join(CSV_OPTIONAL)}, attribute columns)")
        reader.fieldnames = header
        attr_cols = [c for c in header if c in COLUMN_GROUPS]
        unknown = [c for c in header if c not in (*CSV_REQUIRED, *CSV_OPTIONAL, *attr_cols)]
        if unknown:
            raise ReidError(f"{csv_path}: unknown columns {unknown}; expected {list(CSV_REQUIRED)}, optional "
                            f"{list(CSV_OPTIONAL)} and attribute columns {sorted(COLUMN_GROUPS)}")
        records, seen = [], set()
        for lineno, row in enumerate(reader, start=2):
            where = f"{csv_path}, line {lineno}"
            if any(row.get(c) in (None, "") for c in CSV_REQUIRED):
                raise ReidError(f"{where}: empty required field (need {', '.join(CSV_REQUIRED)})")
            if row["tracklet_id"] in seen:
                raise ReidError(f"{where}: duplicate tracklet_id '{row['tracklet_id']}'")
            seen.add(row["tracklet_id"])
            rec = _csv_record(root, row, attr_cols, where, stats)
            if rec is not None:
                records.append(rec)
    counts = {c: max([2] + [1 + r.attributes[c] for r in records if r.attributes and c in r.attributes])
              for c in attr_cols}
    return records, counts


def load_generic(root: str | Path, csv: str | Path | None = None) -> Manifest:
    """Load a user dataset: the CSV layout if `csv` is given or `<root>/tracklets.csv` exists, else the folders."""
    root = require_dir(Path(root), "generic dataset root")
    stats = LoadStats()
    csv_path = Path(csv) if csv is not None else root / CSV_NAME
    meta: dict[str, str] = {}
    if csv is not None or csv_path.is_file():
        records, counts = load_csv(root, csv_path, stats)
        schema = schema_from_columns(counts)
        meta["layout"] = f"csv:{csv_path}"
    else:
        records, schema = load_folders(root, stats), schema_from_columns({})
        meta["layout"] = "folders"
    meta.update(stats.to_meta())
    return Manifest(records=records, root=root, dataset="generic", attributes=schema, meta=meta)
