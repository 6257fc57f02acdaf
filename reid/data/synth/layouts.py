"""Tiny real-dataset layouts: a small synthetic population written in the on-disk format of MARS, iLIDS-VID,
PRID-2011 and DukeMTMC-VideoReID, so that the dataset loaders are exercised on real files
(formats: shared/notes/video-reid-peers-facts.md section 1, shared/annotations/README.md).

`write_layout(out, layout)` returns the directory to point the loader at and writes `layout.json` there with the
counts a loader must reproduce. Pids in the files are the plan's pids; attribute CSVs use the extended formats.
Synthetic conventions where the real files leave semantics open: Duke `top` = 1 for short sleeves (as MARS
`top length`), `shoes` = 1 for light shoes (white, gray), `boots` = 0; Duke bottom color (8):
0 black, 1 white, 2 red (red, pink, purple), 3 gray, 4 blue, 5 green, 6 brown (brown, yellow), 7 complex.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.io import savemat

from reid.data.synth.generate import INCOMPLETE, MARS_COLUMNS, QUALITY_FLAGS, attribute_row, run_jobs
from reid.data.synth.identities import sample_population
from reid.data.synth.plan import camera_pose_weights, pid_str, plan_dataset, sample_length
from reid.data.synth.presets import SynthConfig, make_config
from reid.data.synth.scene import TrackletSpec, render_tracklet, stream
from reid.data.synth.skeleton import sample_yaw
from reid.errors import ReidError

LAYOUTS = ("mars", "ilidsvid", "prid2011", "duke")
SMALL = dict(ids_train=6, ids_test=5, cameras=3, tracklets_per_camera=2, distractors=3, junk=2, min_len=4,
             max_len=12, source_domain=False)
DUKE_COLUMNS = ("person_id", "camera_id", "tracklets_id", "motion", "pose", "occlusion", "cut-out", "muti-person",
                "background-dominant", "target-change", "target-miss", "wrong-target", "backpack", "bag",
                "handbag", "boots", "gender", "hat", "shoes", "top", "bottom color", "top color")
_DUKE_BOTTOM = (1, 2, 0, 5, 3, 2, 6, 4, 6, 7)  # our BOTTOM_COLORS index -> Duke class above


def _render(job: tuple[TrackletSpec, SynthConfig, int]) -> tuple[np.ndarray, dict[str, int]]:
    frames, _, info = render_tracklet(*job)
    return frames, info.flags


def _spec(index: int, ident: Any, camid: int, length: int, rng: np.random.Generator, tid: str) -> TrackletSpec:
    pose = int(rng.choice(6, p=camera_pose_weights(camid)))
    return TrackletSpec(index=index, tracklet_id=tid, identity=ident, pid=ident.pid, camid=camid, role="gallery",
                        tracklet_no=1, num_frames=length, motion=int(rng.choice(5, p=(0.6, 0.1, 0.2, 0.05, 0.05))),
                        pose=pose, yaw=sample_yaw(rng, pose))


def _save(frames: np.ndarray, paths: list[Path]) -> None:
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for f, p in zip(frames, paths, strict=True):
        Image.fromarray(f).save(p, quality=95) if p.suffix == ".jpg" else Image.fromarray(f).save(p)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def write_mars(out: Path, cfg: SynthConfig, seed: int, workers: int) -> dict[str, Any]:
    if cfg.max_len > 999:
        raise ReidError(f"the MARS layout numbers frames with 3 digits; max_len={cfg.max_len} must be <= 999")
    specs = plan_dataset(cfg, seed)
    rendered = run_jobs(_render, [(s, cfg, seed) for s in specs], workers, "layout mars")
    names: dict[str, list[tuple[str, TrackletSpec]]] = {"train": [], "test": []}
    for s, (frames, _) in zip(specs, rendered, strict=True):
        split = "train" if s.role == "train" else "test"
        folder = out / f"bbox_{split}" / pid_str(s.pid)
        files = [f"{pid_str(s.pid)}C{s.camid}T{s.tracklet_no:04d}F{i + 1:03d}.jpg" for i in range(s.num_frames)]
        _save(frames, [folder / f for f in files])
        names[split] += [(f, s) for f in files]
    (out / "info").mkdir(exist_ok=True)
    query_rows = []
    for split in ("train", "test"):
        lines = sorted(names[split], key=lambda x: (x[0][:4], x[0]))  # by folder, then file name
        (out / "info" / f"{split}_name.txt").write_text("".join(n + "\n" for n, _ in lines))
        info: list[list[int]] = []
        for i, (_, s) in enumerate(lines, start=1):
            if info and lines[i - 2][1] is s:
                info[-1][1] = i
            else:
                info.append([i, i, s.pid, s.camid])
                if s.role == "query":
                    query_rows.append(len(info))
        savemat(out / "info" / f"tracks_{split}_info.mat", {f"track_{split}_info": np.asarray(info, np.int32)})
    savemat(out / "info" / "query_IDX.mat", {"query_IDX": np.asarray([query_rows], np.uint16)})
    rows = [attribute_row(s, f) for s, (_, f) in zip(specs, rendered, strict=True) if s.pid >= 1]
    _write_csv(out / "mars_attributes.csv", MARS_COLUMNS, rows)
    return {"train_tracklets": len([s for s in specs if s.role == "train"]),
            "test_tracklets": len([s for s in specs if s.role != "train"]), "query_tracklets": len(query_rows),
            "distractor_tracklets": sum(s.pid == 0 for s in specs), "junk_tracklets": sum(s.pid == -1 for s in specs),
            "train_ids": cfg.ids_train, "test_ids": cfg.ids_test}


def write_ilidsvid(out: Path, cfg: SynthConfig, seed: int, workers: int, persons: int = 8) -> dict[str, Any]:
    if persons < 2 or persons % 2:
        raise ReidError(f"iLIDS-VID layout needs an even number of persons >= 2, got {persons}")
    rng = stream(seed, 0, "ilidsvid")
    numbers = [1, 2, *sorted(int(n) for n in rng.choice(np.arange(4, 3 * persons), persons - 2, replace=False))]
    people = sample_population(stream(seed, 0, "ilidsvid people"), numbers, cfg.shared_attributes)
    specs = [_spec(2 * i + c - 1, p, c, sample_length(rng, cfg.min_len, cfg.max_len), rng, f"cam{c}_person{p.pid:03d}")
             for i, p in enumerate(people) for c in (1, 2)]
    rendered = run_jobs(_render, [(s, cfg, seed) for s in specs], workers, "layout ilidsvid")
    for s, (frames, _) in zip(specs, rendered, strict=True):
        first = int(rng.integers(10, 2000))  # original frame numbers: 5 digits, not starting at 1
        d = out / "i-LIDS-VID" / "sequences" / f"cam{s.camid}" / f"person{s.pid:03d}"
        _save(frames, [d / f"{s.tracklet_id}_{first + i:05d}.png" for i in range(s.num_frames)])
    ls_set = np.stack([rng.permutation(persons) + 1 for _ in range(10)]).astype(np.float64)
    (out / "train-test people splits").mkdir(parents=True, exist_ok=True)
    savemat(out / "train-test people splits" / "train_test_splits_ilidsvid.mat", {"ls_set": ls_set})
    return {"persons": persons, "person_dirs": [f"person{n:03d}" for n in numbers], "trials": 10}


def write_prid2011(out: Path, cfg: SynthConfig, seed: int, workers: int, both: int = 10, a_only: int = 2,
                   b_only: int = 4) -> dict[str, Any]:
    rng = stream(seed, 0, "prid2011")
    people = sample_population(stream(seed, 0, "prid people"), list(range(1, both + a_only + b_only + 1)),
                               cfg.shared_attributes)
    # every 5th shared person gets a sequence too short for the splits, as the real file leaves 22 persons out
    short = {n for n in range(1, both + 1) if n % 5 == 0}
    if (both - len(short)) % 2:  # the splits halve the remaining persons
        short.add(max(n for n in range(1, both + 1) if n not in short))
    cams = {"a": people[:both] + people[both:both + a_only], "b": people[:both] + people[both + a_only:]}
    specs = []
    for cam, ps in cams.items():
        for number, p in enumerate(ps, start=1):
            length = 2 if number in short and cam == "a" else sample_length(rng, cfg.min_len, cfg.max_len)
            specs.append(_spec(len(specs), p, 1 if cam == "a" else 2, length, rng, f"cam_{cam}/person_{number:04d}"))
    rendered = run_jobs(_render, [(s, cfg, seed) for s in specs], workers, "layout prid2011")
    for s, (frames, _) in zip(specs, rendered, strict=True):
        d = out / "prid_2011" / "multi_shot" / s.tracklet_id
        _save(frames, [d / f"{i + 1:04d}.png" for i in range(s.num_frames)])
    eligible = [f"person_{n:04d}" for n in range(1, both + 1) if n not in short]
    splits = []
    for _ in range(10):
        perm = [eligible[i] for i in rng.permutation(len(eligible))]
        half = len(perm) // 2
        splits.append({"test": sorted(perm[:half]), "train": sorted(perm[half:])})
    (out / "splits_prid2011.json").write_text(json.dumps(splits, indent=4) + "\n")
    return {"cam_a_persons": both + a_only, "cam_b_persons": both + b_only, "split_persons": len(eligible),
            "left_out": sorted(f"person_{n:04d}" for n in short)}


def write_duke(out: Path, cfg: SynthConfig, seed: int, workers: int, old_names: bool = False) -> dict[str, Any]:
    specs = [s for s in plan_dataset(cfg, seed) if s.pid != -1]  # Duke has no junk tracklets
    rendered = run_jobs(_render, [(s, cfg, seed) for s in specs], workers, "layout duke")
    rng = stream(seed, 0, "duke")
    first_query: dict[int, int] = {}
    next_pid, pid_of, rows = cfg.ids_train + cfg.ids_test + 1, {}, []
    counts = {"train": 0, "query": 0, "gallery": 0}
    for s, (frames, flags) in zip(specs, rendered, strict=True):
        pid, tno = s.pid, s.tracklet_no
        if pid == 0:  # Duke distractors are ordinary pids that appear in the gallery only
            pid_of[s.index], tno = next_pid, 1
            pid, next_pid = next_pid, next_pid + 1
        dirs = ["train"] if s.role == "train" else ["gallery"]
        if s.role == "query" and first_query.setdefault(pid, s.index) == s.index:
            dirs = ["query", "gallery"]  # one query per identity, duplicated in gallery/
        f0, x0 = (2 if s.index % 3 == 0 else 1), int(rng.integers(100, 60000))
        files = []
        for i in range(s.num_frames):
            f, x = f0 + i, x0 + 12 * i
            files.append(f"{pid:04d}C{s.camid}F{f:04d}X{x:05d}.jpg" if old_names
                         else f"{pid:04d}_C{s.camid}_F{f:04d}_X{x:05d}.jpg")
        for d in dirs:
            _save(frames, [out / d / f"{pid:04d}" / f"{tno:04d}" / n for n in files])
            counts[d] += 1
        a = attribute_row(s, flags)
        rows.append({"person_id": pid, "camera_id": s.camid, "tracklets_id": tno, "motion": a["motion"],
                     "pose": a["pose"], **{("muti-person" if q == "multi-person" else q): a[q] for q in QUALITY_FLAGS},
                     "backpack": a["backpack"], "bag": a["shoulder bag"], "handbag": a["hand bag"], "boots": 0,
                     "gender": a["gender"], "hat": a["hat"], "shoes": int(a["shoes color"] in (1, 3)),
                     "top": a["top length"], "bottom color": _DUKE_BOTTOM[a["bottom color"]],
                     "top color": a["top color"]})
    _write_csv(out / "duke_attributes.csv", DUKE_COLUMNS, rows)
    return {"tracklets": counts, "query_ids": len(first_query), "distractor_ids": len(pid_of),
            "old_names": old_names}


def write_layout(out_dir: str | Path, layout: str, seed: int = 0, workers: int = 1, **knobs: Any) -> Path:
    """Write a tiny `layout` tree into `out_dir` (knobs as in SynthConfig, plus `old_names` for duke, `persons`
    for ilidsvid); returns `out_dir`."""
    if layout not in LAYOUTS:
        raise ReidError(f"unknown layout '{layout}'; expected one of {list(LAYOUTS)}")
    extra = {k: knobs.pop(k) for k in ("old_names", "persons") if k in knobs}
    if "old_names" in extra and layout != "duke" or "persons" in extra and layout != "ilidsvid":
        raise ReidError(f"options {sorted(extra)} do not apply to layout '{layout}'")
    cfg = make_config("tiny", **{**SMALL, **knobs})
    out = Path(out_dir)
    if (out / INCOMPLETE).exists():  # the folder was empty when that run began: all of it is that run's
        print(f"[reid] synth: {out} holds a layout that did not finish; writing it again", flush=True)
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()):
        raise ReidError(f"{out} is not empty; layouts are written into a new or empty directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / INCOMPLETE).touch()
    writer = {"mars": write_mars, "ilidsvid": write_ilidsvid, "prid2011": write_prid2011, "duke": write_duke}[layout]
    facts = writer(out, cfg, seed, workers, **extra)
    (out / "layout.json").write_text(json.dumps({"layout": layout, "seed": seed, **facts}, indent=2) + "\n")
    (out / INCOMPLETE).unlink()
    return out
