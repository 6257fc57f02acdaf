"""DukeMTMC-VideoReID (Wu et al., CVPR 2018).

Layout:
    <root>/{train,query,gallery}/<pid4>/<tracklet4>/<pid4>_C<cam>_F<frame4>_X<index>.jpg
File names come in two formats, `0001_C6_F0099_X30823.jpg` and (older zip) `0001C6F0099X30823.jpg`; the camera is
read from the name, the tracklet number is the folder name. Frames are the files actually present, ordered by their
F number (some tracklets start at F0002: enumerating F0001..F{n} would lose the last frame).

The gallery folder holds a copy of every query tracklet. Query records keep role "query" and their gallery
duplicates (same pid, camera and tracklet number) are dropped; an evaluation protocol that wants the queries in the
gallery (Duke's standard one, like MARS "official") adds the query records back.
"""

from __future__ import annotations

import re
from pathlib import Path

from reid.data.datasets.common import (
    LoadStats,
    frames_record,
    list_frames,
    log,
    require_dir,
    sorted_subdirs,
    trailing_int,
)
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError

SPLITS = ("train", "query", "gallery")
_NAME = re.compile(r"^(-?\d+)_?C(\d+)_?F(\d+)_?[A-Z](\d+)\.jpe?g$", re.IGNORECASE)


def parse_frame_name(name: str) -> tuple[int, int, int]:
    """(pid, camera, frame number) of a Duke frame file name, either format."""
    m = _NAME.match(name)
    if m is None:
        raise ReidError(f"DukeMTMC-VideoReID frame '{name}' is not named like 0001_C6_F0099_X30823.jpg "
                        f"or 0001C6F0099X30823.jpg")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _tracklet(split: str, pid_dir: str, tdir: str, folder: Path) -> TrackletRecord:
    names = list_frames(folder, (".jpg", ".jpeg"))
    parsed = [parse_frame_name(n) for n in names]
    order = sorted(range(len(names)), key=lambda i: (parsed[i][2], names[i]))
    cams = {p[1] for p in parsed}
    if len(cams) > 1:
        raise ReidError(f"DukeMTMC-VideoReID tracklet {folder} mixes cameras {sorted(cams)}")
    pid = trailing_int(pid_dir, "DukeMTMC-VideoReID identity folder", folder.parent)
    tno = trailing_int(tdir, "DukeMTMC-VideoReID tracklet folder", folder)
    return frames_record(tracklet_id=f"duke-{split}-{pid_dir}-{tdir}", pid=pid, camid=cams.pop() if cams else 0,
                         dataset="duke", role=split, rel_dir=f"{split}/{pid_dir}/{tdir}",
                         names=[names[i] for i in order], tracklet_no=tno)


def load_duke(root: str | Path) -> Manifest:
    """Load DukeMTMC-VideoReID from `root` (holding train/, query/, gallery/)."""
    root = require_dir(Path(root), "DukeMTMC-VideoReID root (holding train/, query/, gallery/)")
    for split in SPLITS:
        require_dir(root / split, f"DukeMTMC-VideoReID {split} split")
    stats = LoadStats()
    by_split: dict[str, list[TrackletRecord]] = {}
    for split in SPLITS:
        recs = []
        for pid_dir in sorted_subdirs(root / split):
            for tdir in sorted_subdirs(root / split / pid_dir):
                rec = _tracklet(split, pid_dir, tdir, root / split / pid_dir / tdir)
                if stats.keep(rec):
                    recs.append(rec)
        by_split[split] = recs
    query_keys = {(r.pid, r.camid, r.tracklet_no) for r in by_split["query"]}
    gallery = [r for r in by_split["gallery"] if (r.pid, r.camid, r.tracklet_no) not in query_keys]
    dropped = len(by_split["gallery"]) - len(gallery)
    if dropped != len(query_keys):
        log.warning("DukeMTMC-VideoReID: %d of %d query tracklets have no copy in gallery/",
                    len(query_keys) - dropped, len(query_keys))
    meta = {"protocol": "standard", "gallery_query_duplicates_dropped": str(dropped), **stats.to_meta()}
    return Manifest(records=by_split["train"] + by_split["query"] + gallery, root=root, dataset="duke", meta=meta)
