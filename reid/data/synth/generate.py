"""Generate the synthetic video re-ID dataset: plan, render in parallel, write videos, keypoints, CSV, manifest.

Output directory (paths in the manifest are relative to it):

    videos/<tracklet_id>.mp4        H.264, one per tracklet (video.py)
    keypoints/<tracklet_id>.npy     float32 [num_frames, 18, 3] (x, y, confidence), COCO-18 order (scene.py)
    frames/<tracklet_id>/000000.jpg only with frames=True
    attributes.csv                  the extended MARS attribute columns + glasses, shoes color (pid >= 1 only)
    source_domain/                  only with source_domain=True (source_domain.py)
    summary.json                    counts, knob values, seed, generator version
    manifest.parquet                written last: its presence means the dataset is complete

Manifest records: `video`, `frame_start = 0`, `num_frames`, `keypoints`, `tracklet_no` (the MARS T number),
`attributes` (schema columns -> class, for pid >= 1; None for distractors and junk, which the attribute CSV leaves
out as MARS does), `extra` = {"yaw": viewing yaw in degrees, and the 7 quality flags as "0" / "1"}. The schema is
`schema_from_columns` over the CSV's columns (6 ID-relevant groups + motion and pose).
Quality flags: occlusion = an occluder run, target-miss = a lost run, cut-out = in >= 20 % of the frames a body
joint (elbows and wrists excepted) lies outside the frame; the other four are always 0.

Each tracklet is rendered from random streams derived from (seed, tracklet index), so the output does not depend on
the number of worker processes.
"""

from __future__ import annotations

import csv
import fcntl
import json
import multiprocessing as mp
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reid.data.attributes import schema_from_columns
from reid.data.records import Manifest, TrackletRecord, write_manifest
from reid.data.synth.identities import ID_COLUMNS
from reid.data.synth.plan import plan_dataset
from reid.data.synth.presets import SUITES, SynthConfig, make_config
from reid.data.synth.scene import TrackletSpec, render_tracklet
from reid.data.synth.video import DECORD_BAD_WIDTHS, encode_video
from reid.errors import ReidError
from reid.progress import bar as progress_bar

GENERATOR_VERSION = "1"
QUALITY_FLAGS = ("occlusion", "cut-out", "multi-person", "background-dominant", "target-change", "target-miss",
                 "wrong-target")
MARS_COLUMNS = ("person_id", "camera_id", "tracklets_id", "motion", "pose", *QUALITY_FLAGS, "top color",
                "bottom color", "age", "top length", "bottom length", "shoulder bag", "backpack", "hat", "hand bag",
                "hair", "gender", "bottom type")
CSV_COLUMNS = (*MARS_COLUMNS, "glasses", "shoes color")
CLASS_COUNTS: dict[str, int] = {"motion": 5, "pose": 6, **{f: 2 for f in QUALITY_FLAGS}, **ID_COLUMNS}
_OUTPUTS = ("videos", "keypoints", "frames", "source_domain", "attributes.csv", "summary.json", "manifest.parquet")
# present from the start of a generation to its end: a folder an interrupted `reid synth` left is written again
# rather than refused as someone else's
INCOMPLETE = ".synth-incomplete"


def attribute_row(spec: TrackletSpec, flags: dict[str, int]) -> dict[str, int]:
    """One attribute-CSV row (CSV_COLUMNS) of a tracklet."""
    row = {"person_id": spec.pid, "camera_id": spec.camid, "tracklets_id": spec.tracklet_no,
           "motion": spec.motion, "pose": spec.pose, **{f: int(flags[f]) for f in QUALITY_FLAGS}}
    row.update(spec.identity.attributes())
    return {c: row[c] for c in CSV_COLUMNS}


def _work(job: tuple[TrackletSpec, SynthConfig, int, str]) -> dict[str, int]:
    spec, cfg, seed, root = job
    frames, kps, info = render_tracklet(spec, cfg, seed)
    out = Path(root)
    encode_video(out / "videos" / f"{spec.tracklet_id}.mp4", frames, fps=cfg.fps, crf=cfg.crf, gop=cfg.gop)
    np.save(out / "keypoints" / f"{spec.tracklet_id}.npy", kps)
    if cfg.frames:
        d = out / "frames" / spec.tracklet_id
        d.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(frames):
            Image.fromarray(f).save(d / f"{i:06d}.jpg", quality=95)
    return info.flags


def run_jobs(fn: Any, jobs: list, workers: int, desc: str, unit: str = "tracklets") -> list:
    """Map `fn` over `jobs` in order, in `workers` spawned processes (in-process when workers == 1); progress counts
    the jobs as `unit`."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in progress_bar(jobs, desc=desc, unit=unit)]
    # spawn, not fork: callers may hold threads (torch, Ray) that a fork would copy mid-lock
    with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        return list(progress_bar(pool.imap(fn, jobs, chunksize=max(1, len(jobs) // (8 * workers))), total=len(jobs),
                                 desc=desc, unit=unit))


def _prepare_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ReidError(f"{out} exists and is not a directory; choose a directory for the dataset")
    interrupted = (out / INCOMPLETE).exists()
    if out.exists() and any(out.iterdir()) and not (out / "summary.json").exists() and not interrupted:
        raise ReidError(f"{out} is not empty and was not written by `reid synth` (no summary.json); "
                        f"choose an empty or new directory")
    if interrupted:
        print(f"[reid] synth: {out} holds the output of a `reid synth` that did not finish; writing it again",
              flush=True)
    for name in _OUTPUTS:  # a previous synth output: replace it
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    try:
        for d in ("videos", "keypoints"):
            (out / d).mkdir(parents=True, exist_ok=True)
        (out / INCOMPLETE).touch()
    except OSError as exc:  # a read-only or missing parent: the path and why, not FileNotFoundError's traceback
        raise ReidError(f"cannot create the dataset directory {out}: {exc.strerror or exc}") from None


def _check_run_args(seed: Any, workers: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ReidError(f"synth seed must be a non-negative integer, got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ReidError(f"synth workers must be a positive integer, got {workers!r}")


def generate(out_dir: str | Path, preset: str = "tiny", seed: int = 0, workers: int = 1, **knobs: Any) -> Path:
    """Generate the dataset into `out_dir`; returns the manifest path. Knobs: see presets.SynthConfig."""
    _check_run_args(seed, workers)
    cfg = make_config(preset, **knobs)
    if cfg.width in DECORD_BAD_WIDTHS:
        raise ReidError(f"synth knob width={cfg.width}: decord 0.6.0 cannot read videos of width "
                        f"{sorted(DECORD_BAD_WIDTHS)}; choose another width (e.g. {cfg.width + 2})")
    out = Path(out_dir)
    _prepare_dir(out)
    specs = plan_dataset(cfg, seed)
    flags = run_jobs(_work, [(s, cfg, seed, str(out)) for s in specs], workers, "synth")
    rows = [attribute_row(s, f) for s, f in zip(specs, flags, strict=True)]
    schema = schema_from_columns({c: CLASS_COUNTS[c] for c in CSV_COLUMNS[3:]})
    with open(out / "attributes.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
        w.writeheader()
        w.writerows(r for s, r in zip(specs, rows, strict=True) if s.pid >= 1)
    records = [TrackletRecord(
        tracklet_id=s.tracklet_id, pid=s.pid, camid=s.camid, dataset="synthetic", role=s.role,
        num_frames=s.num_frames, video=f"videos/{s.tracklet_id}.mp4", frame_start=0,
        attributes={c: r[c] for c in schema.column_names} if s.pid >= 1 else None,
        keypoints=f"keypoints/{s.tracklet_id}.npy", tracklet_no=s.tracklet_no,
        extra={"yaw": f"{s.yaw:.1f}", **{k: str(r[k]) for k in QUALITY_FLAGS}},
    ) for s, r in zip(specs, rows, strict=True)]
    if cfg.source_domain:
        from reid.data.synth.source_domain import generate_source_domain
        generate_source_domain(out / "source_domain", cfg, seed, workers)
    summary = summarize(specs, cfg, seed, preset)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    meta = {"generator": "reid.synth", "generator_version": GENERATOR_VERSION, "preset": preset, "seed": str(seed)}
    path = write_manifest(Manifest(records=records, root=out, dataset="synthetic", attributes=schema, meta=meta))
    (out / INCOMPLETE).unlink()
    return path


def summarize(specs: list[TrackletSpec], cfg: SynthConfig, seed: int, preset: str) -> dict[str, Any]:
    roles = Counter(s.role for s in specs)
    return {
        "generator_version": GENERATOR_VERSION, "preset": preset, "seed": seed, "knobs": asdict(cfg),
        "tracklets": len(specs), "frames": int(sum(s.num_frames for s in specs)),
        "roles": {r: roles.get(r, 0) for r in ("train", "query", "gallery")},
        "identities": {"train": len({s.pid for s in specs if s.role == "train"}),
                       "test": len({s.pid for s in specs if s.role in ("query", "gallery") and s.pid > 0}),
                       "query": len({s.pid for s in specs if s.role == "query"})},
        "distractor_tracklets": sum(s.pid == 0 for s in specs), "junk_tracklets": sum(s.pid == -1 for s in specs),
        "cameras": sorted({s.camid for s in specs}),
    }


def ensure_dataset(out_dir: str | Path, preset: str = "demo", seed: int = 0, workers: int = 1, **knobs: Any
                   ) -> Path:
    """The manifest of `out_dir`, generating the dataset first if the manifest is missing.

    An existing manifest is returned as it is, whatever preset or knobs it was made with (see its summary.json),
    except that a phenomenon suite must match the requested suite and `strength` (else ReidError).
    A lock file serialises concurrent callers (parallel test workers, the demo), so the set is generated once.
    """
    out = Path(out_dir)
    manifest = out / "manifest.parquet"
    if manifest.is_file():
        _check_suite(out, preset, knobs)
        return manifest
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        lock = open(out.parent / f".{out.name}.lock", "w")  # closed by the `with` below
    except OSError as exc:  # a read-only or missing parent (`reid demo --data`, `reid train data.root=`)
        raise ReidError(f"cannot create the dataset directory {out}: {exc.strerror or exc}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.is_file():
            _check_suite(out, preset, knobs)
            return manifest
        return generate(out, preset=preset, seed=seed, workers=workers, **knobs)


def _check_suite(out: Path, preset: str, knobs: dict[str, Any]) -> None:
    """A phenomenon suite at one strength must not silently stand in for another (or for its control)."""
    summary = out / "summary.json"
    if preset not in SUITES or not summary.is_file():
        return
    s = json.loads(summary.read_text())
    have = (s.get("preset"), float(s.get("knobs", {}).get("strength", 0.0)))
    want = (preset, float(knobs.get("strength") or 0.0))
    if have != want:
        raise ReidError(f"{out} holds synth preset '{have[0]}' at strength {have[1]:g}, not '{want[0]}' at strength "
                        f"{want[1]:g}: set data.root to another directory (e.g. {out.parent}/synthetic-{preset}-"
                        f"s{want[1]:g}) or delete {out}")
