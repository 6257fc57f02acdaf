"""iLIDS-VID (Wang et al., ECCV 2014): two cameras, one sequence per person per camera.

Layout:
    <root>/i-LIDS-VID/sequences/cam1/person001/cam1_person001_00317.png ...
    <root>/i-LIDS-VID/sequences/cam2/person001/...
    <root>/train-test people splits/train_test_splits_ilidsvid.mat     (`ls_set`, 10 x 300)

Each row of `ls_set` is a trial; its entries are 1-based indices into the SORTED person folders of cam1; the first
half of the columns are the test persons, the rest the training persons. Roles per trial: train = both cameras of
the training persons, query = cam1 of the test persons, gallery = cam2 of the test persons. Frames are ordered by
their frame number (the popular loaders use filesystem order, which scrambles the sequences).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reid.data.datasets.common import (
    LoadStats,
    check_trial,
    frames_record,
    list_frames,
    load_mat_var,
    require_dir,
    sorted_subdirs,
    trailing_int,
)
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError

SEQUENCES = Path("i-LIDS-VID") / "sequences"
SPLIT_FILE = Path("train-test people splits") / "train_test_splits_ilidsvid.mat"
CAMERAS = ("cam1", "cam2")


def read_ilids_splits(path: Path) -> np.ndarray:
    """`ls_set` as int64 [trials, persons], 1-based person indices."""
    ls_set = load_mat_var(path, "ls_set", "iLIDS-VID split file").astype(np.int64)
    if ls_set.ndim != 2 or ls_set.shape[1] < 2:
        raise ReidError(f"iLIDS-VID split file {path}: ls_set has shape {ls_set.shape}; expected [trials, persons]")
    return ls_set


def split_persons(ls_set: np.ndarray, trial: int, persons: list[str], source: Path) -> tuple[set[str], set[str]]:
    """(train, test) person folder names of one trial: first half of the row is test (Wang et al. ECCV'14)."""
    row = ls_set[check_trial(trial, ls_set.shape[0], source)]
    if row.min() < 1 or row.max() > len(persons):
        raise ReidError(f"{source}: trial {trial} refers to person {int(row.max())} but only {len(persons)} "
                        f"person folders were found")
    half = len(row) // 2
    test = {persons[i - 1] for i in row[:half].tolist()}
    train = {persons[i - 1] for i in row[half:].tolist()}
    return train, test


def load_ilidsvid(root: str | Path, trial: int = 0, splits: str | Path | None = None) -> Manifest:
    """Load one trial of iLIDS-VID. `splits` overrides the path of train_test_splits_ilidsvid.mat."""
    root = require_dir(Path(root), "iLIDS-VID root (holding i-LIDS-VID/ and 'train-test people splits/')")
    seq = require_dir(root / SEQUENCES, "iLIDS-VID sequences")
    cam_dirs = [require_dir(seq / c, f"iLIDS-VID {c} sequences") for c in CAMERAS]
    split_path = Path(splits) if splits is not None else root / SPLIT_FILE
    ls_set = read_ilids_splits(split_path)
    persons = sorted_subdirs(cam_dirs[0])
    train, test = split_persons(ls_set, trial, persons, split_path)
    stats = LoadStats()
    records: list[TrackletRecord] = []
    for person in persons:
        if person in train:
            roles = ("train", "train")
        elif person in test:
            roles = ("query", "gallery")
        else:
            roles = ("unused", "unused")
        pid = trailing_int(person, "iLIDS-VID person folder", cam_dirs[0])
        for cam_index, (cam, cam_dir, role) in enumerate(zip(CAMERAS, cam_dirs, roles, strict=True)):
            folder = cam_dir / person
            if not folder.is_dir():
                stats.tracklet_missing(f"ilidsvid-{cam}-{person}", folder)
                continue
            rec = frames_record(tracklet_id=f"ilidsvid-{cam}-{person}", pid=pid, camid=cam_index + 1,
                                dataset="ilidsvid", role=role, rel_dir=f"{SEQUENCES.as_posix()}/{cam}/{person}",
                                names=list_frames(folder, (".png",)))
            if stats.keep(rec):
                records.append(rec)
    meta = {"protocol": "standard", "trial": str(trial), "splits": str(split_path), **stats.to_meta()}
    return Manifest(records=records, root=root, dataset="ilidsvid", meta=meta)
