"""MARS (Zheng et al., ECCV 2016): `bbox_train/`, `bbox_test/`, `info/` from liangzheng06/MARS-evaluation.

`info/tracks_{train,test}_info.mat` hold one row per tracklet, `[start, end, pid, camid]`, where start/end are
1-based inclusive line numbers into `info/{train,test}_name.txt` (one frame file name per line, e.g.
`0065C1T0002F016.jpg`: pid `0065` (`0000` distractor, `00-1` junk), camera 1, tracklet number 2, frame 16).
`info/query_IDX.mat` lists the 1-based test rows that are queries.

Records are built from these matrices in one pass (`mars_records_from_info`); frames are then checked against one
directory listing per identity folder (`resolve_frames`), never one filesystem call per frame. Tracklet ids are
`mars-{train,test}-NNNNN` with NNNNN the 1-based info row, so `mars-test-04130` is query_IDX entry 4130.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from reid.data.datasets.attributes_csv import AttributeTable
from reid.data.datasets.common import LoadStats, load_mat_var, require_dir, require_file
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError

PROTOCOLS = ("official", "torchreid")
DISTRACTOR, JUNK = 0, -1


@dataclass(frozen=True)
class MarsInfo:
    """The info matrices. train / test: int64 [N, 4] `[start, end, pid, camid]`; query_rows: int64 [Q], 0-based."""

    train: np.ndarray
    test: np.ndarray
    query_rows: np.ndarray


def read_mars_info(info_dir: str | Path) -> MarsInfo:
    d = require_dir(Path(info_dir), "MARS info folder (copy of MARS-evaluation/info)")
    train = load_mat_var(d / "tracks_train_info.mat", "track_train_info", "MARS train tracklets").astype(np.int64)
    test = load_mat_var(d / "tracks_test_info.mat", "track_test_info", "MARS test tracklets").astype(np.int64)
    query = load_mat_var(d / "query_IDX.mat", "query_IDX", "MARS query index").astype(np.int64).ravel() - 1
    for name, m in (("track_train_info", train), ("track_test_info", test)):
        if m.ndim != 2 or m.shape[1] != 4:
            raise ReidError(f"MARS {name} has shape {m.shape}; expected [N, 4] = [start, end, pid, camid]")
        if (m[:, 1] < m[:, 0]).any() or (m[:, 0] < 1).any():
            raise ReidError(f"MARS {name}: every row needs 1 <= start <= end")
    if query.size and (query.min() < 0 or query.max() >= len(test)):
        raise ReidError(f"MARS query_IDX points outside track_test_info (1..{len(test)})")
    return MarsInfo(train, test, query)


def mars_records_from_info(info: MarsInfo, train_names: Sequence[str] | None = None,
                           test_names: Sequence[str] | None = None) -> list[TrackletRecord]:
    """Train records (role train), then test records (role query for query_IDX rows, else gallery).

    With the name lists, each record lists its frame files (`bbox_{split}/<pid4>/<name>`) and takes its tracklet
    number from the names; without them, records carry only `num_frames` (enough for protocol bookkeeping).
    """
    query = set(info.query_rows.tolist())
    out: list[TrackletRecord] = []
    for split, mat, names in (("train", info.train, train_names), ("test", info.test, test_names)):
        if names is not None and int(mat[:, 1].max()) > len(names):
            raise ReidError(f"MARS {split}_name.txt has {len(names)} lines but tracks_{split}_info.mat refers to "
                            f"line {int(mat[:, 1].max())}; the two files do not belong together")
        for i, (start, end, pid, cam) in enumerate(mat.tolist()):
            role = "train" if split == "train" else ("query" if i in query else "gallery")
            rec = TrackletRecord(tracklet_id=f"mars-{split}-{i + 1:05d}", pid=pid, camid=cam, dataset="mars",
                                 role=role, num_frames=end - start + 1)
            if names is not None:
                rec = _with_names(rec, split, names[start - 1:end], i)
            out.append(rec)
    return out


def _with_names(rec: TrackletRecord, split: str, names: Sequence[str], row: int) -> TrackletRecord:
    first = names[0]
    try:
        pid = JUNK if first[0:4] == "00-1" else int(first[0:4])
        cam, tno = int(first[5]), int(first[7:11])
    except (ValueError, IndexError):
        raise ReidError(f"MARS {split}_name.txt: '{first}' is not a MARS frame name like 0065C1T0002F016.jpg") from None
    if (pid, cam) != (rec.pid, rec.camid):
        raise ReidError(f"MARS {split}_name.txt line for info row {row + 1} is '{first}' (pid {pid}, camera {cam}) "
                        f"but tracks_{split}_info.mat says pid {rec.pid}, camera {rec.camid}")
    if names[-1][:11] != first[:11]:
        raise ReidError(f"MARS {split}_name.txt: info row {row + 1} spans '{first}' .. '{names[-1]}', which are not "
                        f"one tracklet; the name list and tracks_{split}_info.mat do not belong together")
    folder = f"bbox_{split}/{first[:4]}"
    return replace(rec, frames=tuple(f"{folder}/{n}" for n in names), tracklet_no=tno)


def read_name_list(path: Path) -> list[str]:
    require_file(path, "MARS frame name list")
    with path.open() as fh:
        return [line.strip() for line in fh if line.strip()]


def resolve_frames(records: list[TrackletRecord], root: Path, stats: LoadStats) -> list[TrackletRecord]:
    """Drop frames that are absent on disk (one scandir per identity folder) and tracklets left empty."""
    listing: dict[str, set[str]] = {}
    out = []
    for r in records:
        if not r.frames:
            out.append(r)
            continue
        folder = r.frames[0].rsplit("/", 1)[0]
        if folder not in listing:
            try:
                with os.scandir(root / folder) as it:
                    listing[folder] = {e.name for e in it}
            except FileNotFoundError:
                listing[folder] = set()
        present = listing[folder]
        kept = tuple(f for f in r.frames if f.rsplit("/", 1)[1] in present)
        if len(kept) != len(r.frames):
            missing = next(f for f in r.frames if f.rsplit("/", 1)[1] not in present)
            stats.frames_missing(r.tracklet_id, len(r.frames) - len(kept), missing)
            r = replace(r, frames=kept, num_frames=len(kept))
        if stats.keep(r):
            out.append(r)
    return out


def load_mars(root: str | Path, protocol: str = "official", check_frames: bool = True) -> Manifest:
    """Load MARS from `root` (holding bbox_train/, bbox_test/, info/).

    `protocol` is recorded in the manifest metadata; the roles do not depend on it (see `mars_protocol_sets`).
    `check_frames=False` skips the directory listings (the manifest then trusts the name lists).
    """
    if protocol not in PROTOCOLS:
        raise ReidError(f"MARS protocol '{protocol}' is unknown; expected one of {PROTOCOLS}")
    root = require_dir(Path(root), "MARS root (holding bbox_train/, bbox_test/, info/)")
    info_dir = root / "info"
    info = read_mars_info(info_dir)
    train_names = read_name_list(info_dir / "train_name.txt")
    test_names = read_name_list(info_dir / "test_name.txt")
    records = mars_records_from_info(info, train_names, test_names)
    stats = LoadStats()
    if check_frames:
        require_dir(root / "bbox_train", "MARS training frames")
        require_dir(root / "bbox_test", "MARS test frames")
        records = resolve_frames(records, root, stats)
    meta = {"protocol": protocol, "distractor_pids": str(DISTRACTOR), "junk_pids": str(JUNK), **stats.to_meta()}
    return Manifest(records=records, root=root, dataset="mars", meta=meta)


def mars_protocol_sets(records: Sequence[TrackletRecord], protocol: str = "official"
                       ) -> tuple[list[TrackletRecord], list[TrackletRecord]]:
    """(query, gallery) of a MARS evaluation protocol.

    - "official" (MARS-evaluation `test_mars.m`, AP3D, STE-NVAN): the gallery is every test tracklet except junk
      (pid -1), query tracklets included, distractors (pid 0) included. 11310 tracklets on MARS.
    - "torchreid" (torchreid, jiyanggao): the gallery also leaves the query tracklets out. 9330 tracklets; 140
      queries are then left without a cross-camera match.
    Queries are the records with role "query", in manifest order.
    """
    if protocol not in PROTOCOLS:
        raise ReidError(f"MARS protocol '{protocol}' is unknown; expected one of {PROTOCOLS}")
    query = [r for r in records if r.role == "query"]
    gallery_roles = ("query", "gallery") if protocol == "official" else ("gallery",)
    gallery = [r for r in records if r.role in gallery_roles and r.pid != JUNK]
    return query, gallery


def infer_tracklet_numbers(records: Sequence[TrackletRecord], table: AttributeTable) -> list[TrackletRecord]:
    """Tracklet numbers for records built without the name lists, taken from an attribute table.

    Info rows are sorted by file name (`<pid>C<cam>T<tttt>...`), so within one (pid, camera) they come in increasing
    tracklet number; the k-th record of a (pid, camera) gets the k-th smallest tracklet number the table has for it.
    Raises if a (pid, camera) has a different number of tracklets in the table than in the records.
    """
    per_key: dict[tuple[int, int], list[int]] = defaultdict(list)
    for pid, cam, tno in table.values:
        per_key[(pid, cam)].append(tno)
    seen: dict[tuple[int, int], int] = defaultdict(int)
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for r in records:
        if r.pid > 0:
            counts[(r.pid, r.camid)] += 1
    bad = [k for k in set(counts) | set(per_key) if counts.get(k, 0) != len(per_key.get(k, ()))]
    if bad:
        raise ReidError(f"{table.path}: tracklet counts per (pid, camera) differ from the info matrices for "
                        f"{len(bad)} pairs, e.g. {sorted(bad)[:3]}; the tracklet numbers cannot be inferred")
    numbers = {k: sorted(v) for k, v in per_key.items()}
    out = []
    for r in records:
        if r.pid <= 0:
            out.append(r)
            continue
        k = (r.pid, r.camid)
        out.append(replace(r, tracklet_no=numbers[k][seen[k]]))
        seen[k] += 1
    return out
