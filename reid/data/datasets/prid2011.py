"""PRID-2011 (Hirzer et al., SCIA 2011), multi-shot part: cam_a (385 persons), cam_b (749 persons); persons
0001-0200 appear in both cameras.

Layout:
    <root>/prid_2011/multi_shot/cam_a/person_0001/0001.png ...
    <root>/prid_2011/multi_shot/cam_b/person_0001/...
    <root>/splits_prid2011.json                     (standard splits, torchreid's file)
    or <root>/train_test_splits_prid.mat            (iLIDS-VID's `train-test people splits/` file; also looked up there)

Protocols:
- "standard": 178 persons, 10 trials of 89 train / 89 test persons. From the JSON (a list of
  `{"train": [dirs], "test": [dirs]}`), else from the .mat (`ls_set`, 10 x 178, 1-based indices into the sorted
  persons among the first 200 whose sequences have >= 27 frames in both cameras; first half of a row is test).
- "legacy" (RCN / ASTPN era): the first 200 persons, a random 50/50 split drawn from (seed, trial).
Roles: train = both cameras of the training persons, query = cam_a, gallery = cam_b of the test persons; every
other sequence on disk is "unused" (kept so that distractor galleries can be built later).
pid = the folder number, except that cam_b folders above 0200 (people never seen by cam_a) get pid 1000 + number,
so that they cannot be mistaken for the different cam_a person with the same folder name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from reid.data.datasets.common import (
    LoadStats,
    check_trial,
    frames_record,
    list_frames,
    load_mat_var,
    require_dir,
    require_file,
    sorted_subdirs,
    trailing_int,
)
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError

MULTI_SHOT = Path("prid_2011") / "multi_shot"
CAMERAS = ("cam_a", "cam_b")
PROTOCOLS = ("standard", "legacy")
JSON_NAME = "splits_prid2011.json"
MAT_NAMES = (Path("train_test_splits_prid.mat"), Path("train-test people splits") / "train_test_splits_prid.mat")
MIN_FRAMES = 27  # person-reid-lib's rule that yields the 178 persons of the .mat splits
LEGACY_PERSONS = 200
CAM_B_ONLY_OFFSET = 1000


def read_prid_splits_json(path: Path) -> list[dict[str, list[str]]]:
    """The standard splits as a list of {"train": [...], "test": [...]} person folder names."""
    require_file(path, "PRID-2011 split file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReidError(f"PRID-2011 split file {path} is not valid JSON ({exc})") from None
    ok = isinstance(data, list) and data and all(
        isinstance(t, dict) and isinstance(t.get("train"), list) and isinstance(t.get("test"), list) for t in data)
    if not ok:
        raise ReidError(f"PRID-2011 split file {path}: expected a list of {{\"train\": [...], \"test\": [...]}}")
    for k, t in enumerate(data):
        if set(t["train"]) & set(t["test"]):
            raise ReidError(f"PRID-2011 split file {path}: trial {k} has persons in both train and test")
    return [{"train": [str(x) for x in t["train"]], "test": [str(x) for x in t["test"]]} for t in data]


def _find_splits(root: Path) -> Path:
    candidates = [root / JSON_NAME, *(root / m for m in MAT_NAMES)]
    for c in candidates:
        if c.is_file():
            return c
    raise ReidError("PRID-2011 standard splits: expected one of " + ", ".join(str(c) for c in candidates)
                    + " (or pass splits=PATH / --splits)")


def _mat_trial(path: Path, trial: int, lengths: dict[str, tuple[int, int]]) -> tuple[list[str], list[str]]:
    ls_set = load_mat_var(path, "ls_set", "PRID-2011 split file").astype(np.int64)
    eligible = sorted(p for p, (a, b) in lengths.items() if min(a, b) >= MIN_FRAMES)
    if ls_set.ndim != 2 or ls_set.shape[1] != len(eligible):
        raise ReidError(f"{path}: ls_set has shape {ls_set.shape} but {len(eligible)} of the first "
                        f"{LEGACY_PERSONS} persons have >= {MIN_FRAMES} frames in both cameras (expected 178)")
    row = ls_set[check_trial(trial, ls_set.shape[0], path)]
    half = len(row) // 2
    return [eligible[i - 1] for i in row[half:]], [eligible[i - 1] for i in row[:half]]


def load_prid2011(root: str | Path, trial: int = 0, protocol: str = "standard", splits: str | Path | None = None,
                  seed: int = 0) -> Manifest:
    """Load one trial of PRID-2011 (multi-shot). `splits` overrides the split file (.json or .mat)."""
    if protocol not in PROTOCOLS:
        raise ReidError(f"PRID-2011 protocol '{protocol}' is unknown; expected one of {PROTOCOLS}")
    root = require_dir(Path(root), "PRID-2011 root (holding prid_2011/multi_shot/)")
    cam_dirs = [require_dir(root / MULTI_SHOT / c, f"PRID-2011 {c} sequences") for c in CAMERAS]
    persons = [sorted_subdirs(d) for d in cam_dirs]
    frames = [{p: list_frames(d / p, (".png",)) for p in ps} for d, ps in zip(cam_dirs, persons, strict=True)]
    numbers = [{p: trailing_int(p, "PRID-2011 person folder", d) for p in ps}
               for d, ps in zip(cam_dirs, persons, strict=True)]
    shared = sorted(p for p in set(persons[0]) & set(persons[1]) if numbers[0][p] <= LEGACY_PERSONS)

    source = "seeded random 50/50 split of the first 200 persons"
    if protocol == "legacy":
        if len(shared) < 2:
            raise ReidError(f"PRID-2011: no persons found in both {cam_dirs[0]} and {cam_dirs[1]}")
        order = np.random.default_rng([int(seed), int(trial)]).permutation(len(shared))
        half = len(shared) // 2
        test = [shared[i] for i in sorted(order[:half])]
        train = [shared[i] for i in sorted(order[half:])]
    else:
        split_path = Path(splits) if splits is not None else _find_splits(root)
        source = str(split_path)
        if split_path.suffix == ".mat":
            lengths = {p: (len(frames[0][p]), len(frames[1][p])) for p in shared}
            train, test = _mat_trial(split_path, trial, lengths)
        else:
            trials = read_prid_splits_json(split_path)
            t = trials[check_trial(trial, len(trials), split_path)]
            train, test = t["train"], t["test"]
        absent = [p for p in train + test if p not in frames[0] or p not in frames[1]]
        if absent:
            raise ReidError(f"PRID-2011: {source} names persons without a sequence in both {cam_dirs[0]} and "
                            f"{cam_dirs[1]}, e.g. {absent[:3]}")

    role_of = {p: ("train", "train") for p in train} | {p: ("query", "gallery") for p in test}
    stats = LoadStats()
    records: list[TrackletRecord] = []
    for cam_index, cam in enumerate(CAMERAS):
        for person in persons[cam_index]:
            role = role_of.get(person, ("unused", "unused"))[cam_index]
            pid = numbers[cam_index][person]
            if cam_index == 1 and pid > LEGACY_PERSONS:
                pid += CAM_B_ONLY_OFFSET  # person_0201+ of cam_b are not the person_0201+ of cam_a
            rec = frames_record(tracklet_id=f"prid2011-{cam}-{person}", dataset="prid2011", role=role,
                                pid=pid, camid=cam_index + 1,
                                rel_dir=f"{MULTI_SHOT.as_posix()}/{cam}/{person}", names=frames[cam_index][person])
            if stats.keep(rec):
                records.append(rec)
    meta = {"protocol": protocol, "trial": str(trial), "splits": source, **stats.to_meta()}
    if protocol == "legacy":
        meta["seed"] = str(seed)
    return Manifest(records=records, root=root, dataset="prid2011", meta=meta)
