"""A validation split held out of the training identities (issue 17, item 7): what selects never sees the test split.

`data.val_identities` training identities are taken out of training (their records get role "unused" and the
marker `extra["val_split"] = "1"`) and form the validation query/gallery set; everything that selects (the best
checkpoint, ASHA's early stopping, every Tune objective `checkpoint_score`) reads it, and the protocol's test split
(roles query / gallery) is evaluated once, at the end of a run (`reid.training.api.train`).

- `val_identities` < 1: a fraction of the training identities (rounded, at least 2: with one identity every
  gallery item is a match and any ranking scores 100); >= 1: a count; 0: no validation split. A manifest with too
  few identities for a split (fewer than 2 to hold out and 2 to train on) trains without one (a logged warning).
- Only identities seen by at least two cameras are eligible: a validation query needs a match from another camera
  (the metrics ignore same-identity-same-camera items, as for every protocol).
- The draw is deterministic (generator seeded with VAL_SEED over the eligible pids in ascending order), the same for
  every run, seed and method on a dataset, so the rows of an ablation train on the same identities.
- Query = gallery = every tracklet of the held-out identities (all-vs-all, as mars-official keeps the queries in
  the gallery): with few identities this gives several queries per identity instead of one.

Datasets with trials (iLIDS-VID, PRID-2011) hold out of the trial's training identities; the test split of the trial
is untouched. The derived manifest (same root, same attribute schema) is written next to the run
(`write_validation_manifest`) so that the Ray data pipeline, which reads records by path, trains on the rest.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from reid import storage
from reid.data.records import Manifest, TrackletRecord, read_manifest, write_manifest
from reid.errors import ReidError
from reid.evaluation.protocols import EvalSplit

log = logging.getLogger("reid.data")

VAL_KEY = "val_split"
VAL_SEED = 0
MIN_IDENTITIES = 2
VAL_LABEL = "validation (held-out training identities)"


def holdout_count(num_train_ids: int, val_identities: float) -> int:
    """How many identities `val_identities` asks for out of `num_train_ids` (fraction < 1, count >= 1, 0 = none)."""
    if val_identities < 0:
        raise ReidError(f"data.val_identities must be >= 0 (a fraction < 1 or a count), got {val_identities:g}")
    if val_identities == 0:
        return 0
    if val_identities < 1:
        return max(MIN_IDENTITIES, int(math.floor(val_identities * num_train_ids + 0.5)))
    if val_identities != int(val_identities):
        raise ReidError(f"data.val_identities >= 1 is a count of identities, got {val_identities:g}")
    return max(MIN_IDENTITIES, int(val_identities))


def choose_validation_pids(records: Sequence[TrackletRecord], val_identities: float) -> list[int]:
    """The held-out identities (ascending), drawn from the training identities seen by >= 2 cameras."""
    cams: dict[int, set[int]] = defaultdict(set)
    for r in records:
        if r.role == "train":
            cams[r.pid].add(r.camid)
    wanted = holdout_count(len(cams), val_identities)
    if wanted == 0 or not cams:  # no training records (e.g. a gallery of new footage): nothing to hold out
        return []
    eligible = sorted(p for p, c in cams.items() if len(c) >= 2)
    # at least MIN_IDENTITIES identities must stay for training as well
    wanted = min(wanted, len(eligible), len(cams) - MIN_IDENTITIES)
    if wanted < MIN_IDENTITIES:
        log.warning("data.val_identities=%g: %d training identities (%d seen by two cameras) are too few to hold "
                    "%d out for validation; training on all of them without a validation split",
                    val_identities, len(cams), len(eligible), MIN_IDENTITIES)
        return []
    rng = np.random.default_rng(VAL_SEED)
    return sorted(int(p) for p in rng.choice(np.array(eligible), size=wanted, replace=False))


def with_validation_split(manifest: Manifest, val_identities: float) -> Manifest:
    """The manifest with the held-out identities' training records turned into validation records (role
    "unused", `extra[VAL_KEY] = "1"`); unchanged when `val_identities` is 0 or the manifest already has one."""
    if val_identities == 0 or has_validation_split(manifest.records):
        return manifest
    held = set(choose_validation_pids(manifest.records, val_identities))
    if not held:
        return manifest
    records = [replace(r, role="unused", extra={**r.extra, VAL_KEY: "1"}) if r.role == "train" and r.pid in held
               else r for r in manifest.records]
    meta = {**manifest.meta, "val_identities": ",".join(map(str, sorted(held)))}
    return Manifest(records=records, root=manifest.root, dataset=manifest.dataset, attributes=manifest.attributes,
                    meta=meta)


def has_validation_split(records: Sequence[TrackletRecord]) -> bool:
    return any(r.extra.get(VAL_KEY) == "1" for r in records)


def validation_split(records: Sequence[TrackletRecord]) -> EvalSplit | None:
    """Query = gallery = the validation records (indices into `records`); None when there are none."""
    idx = np.array([i for i, r in enumerate(records) if r.extra.get(VAL_KEY) == "1"], dtype=np.int64)
    if idx.size == 0:
        return None
    return EvalSplit(query=idx, gallery=idx, label=VAL_LABEL,
                     notes=(f"{len({records[i].pid for i in idx})} identities, {idx.size} tracklets",))


def write_validation_manifest(manifest_path: Path | str, val_identities: float,
                              out_dir: Path | str) -> Path | str:
    """Write the manifest with its validation split to `out_dir/manifest-val.parquet` (atomically: concurrent trials
    may write the same file) and return its path; `manifest_path` itself when no split is asked for. `out_dir` may
    be a URI (one PUT, atomic)."""
    if val_identities == 0:
        return manifest_path
    source = read_manifest(manifest_path)
    derived = with_validation_split(source, val_identities)
    if derived is source:
        return manifest_path
    if storage.is_uri(out_dir):
        return write_manifest(derived, storage.join(out_dir, "manifest-val.parquet"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "manifest-val.parquet"
    tmp = out_dir / f".manifest.{os.getpid()}.tmp.parquet"
    write_manifest(derived, tmp)
    os.replace(tmp, target)
    return target.resolve()
