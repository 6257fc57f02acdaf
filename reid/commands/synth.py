"""`reid synth`: generate the synthetic video re-ID dataset (or a tiny real-dataset layout)."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import fields
from pathlib import Path

from reid.data.synth.presets import PRESETS, SynthConfig

DESCRIPTION = """Generate the synthetic video re-ID dataset: procedurally rendered pedestrians (identity = a fixed
combination of clothing, hair, hat, glasses, shoes and carried item), articulated walking / running / standing
motion seen from front / back / side / diagonal viewpoints, cameras with their own background, colour cast and blur,
and nuisances (occluders, box jitter, lost frames, motion blur, noise). Nothing is downloaded.

Presets (knob options override them):
  tiny    12 train / 8 test ids, 3 cameras, 8-16 frames             (tests: a few seconds)
  demo    60 train / 40 test ids, 4 cameras, 8-64 frames, +source domain  (default; ~56 CPU-s, ~30 s on 2 cores)
  large   625 train / 635 test ids, 6 cameras, 8-120 frames, ~10k tracklets, +source domain  (benchmarks)

Phenomenon suites (150 train / 300 test ids, 6 cameras, 8-16 frames, 64x32, >= 500 valid queries): --strength S
(0..1) puts one nuisance into the data; --strength 0 is the matched control (same people, same tracklets):
  quality     occluded and lost runs of frames (occlusion = lost = S)      temporal attention
  misalign    box jitter and partial crops (jitter = partial = S)          posetap AlignNet, astpn pyramid
  attributes  look-alikes that differ in few local parts (shared = 0.9 S)  adfta disentangling, asanet ASRE
  pose        non-walking motions, any viewpoint (pose_variation = S)      asanet PMI

Output (DIR, default data/synthetic-<preset>):
  videos/<tracklet_id>.mp4  keypoints/<tracklet_id>.npy  [frames/<tracklet_id>/000000.jpg]
  attributes.csv  summary.json  manifest.parquet  [source_domain/{images/,labels.csv,groups.json}]
DIR may be empty, new, or an earlier `reid synth` output (replaced, also one that was interrupted); a folder
holding anything else is refused.

With --layout, a small population is written instead in the on-disk layout of MARS, iLIDS-VID, PRID-2011 or
DukeMTMC-VideoReID (default DIR data/synthetic-<layout>), to exercise the dataset loaders on real files.
"""

_BOOL_KNOBS = ("frames", "source_domain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="size preset (default: demo)")
    parser.add_argument("--out", default=None, help="output directory (default: data/synthetic-<preset>)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed = identical dataset (default 0)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="rendering processes; the output does not depend on it (default: min(4, CPUs))")
    parser.add_argument("--frames", action=argparse.BooleanOptionalAction, default=None,
                        help="also write frames/<tracklet_id>/000000.jpg ... (default: no)")
    parser.add_argument("--source-domain", action=argparse.BooleanOptionalAction, default=None,
                        help="also write the image-level source-domain attribute set (default: yes for demo and "
                             "large, no for tiny)")
    parser.add_argument("--layout", choices=["mars", "ilidsvid", "prid2011", "duke"], default=None,
                        help="write a tiny real-dataset layout instead of the synthetic video set (--preset is "
                             "then ignored; size knobs still apply)")
    parser.add_argument("--old-names", action="store_true", default=None,
                        help="duke layout: old file names 0001C6F0099X30823.jpg")
    parser.add_argument("--persons", type=int, default=None, help="ilidsvid layout: number of persons (even)")
    knobs = parser.add_argument_group("knobs (default: the preset's value)")
    defaults = SynthConfig()
    for f in fields(SynthConfig):
        if f.name in _BOOL_KNOBS:
            continue
        m = f.metadata
        rng = f" [{m['lo']} .. {m['hi']}]" if m["lo"] is not None else ""
        knobs.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=int if f.type == "int" else float,
                           default=None, metavar="N" if f.type == "int" else "X",
                           help=f"{m['help']}{rng} (demo: {getattr(defaults, f.name)})")


def run(args: argparse.Namespace) -> int:
    from reid import storage
    from reid.data.synth import generate, write_layout

    knobs = {f.name: getattr(args, f.name) for f in fields(SynthConfig) if getattr(args, f.name, None) is not None}
    t0 = time.perf_counter()
    if args.out is not None:  # a string until here: Path("s3://b/x") would be s3:/b/x, a local folder
        args.out = storage.local_only(args.out, "--out", "synth", writes=True)
    if args.layout:
        out = args.out or Path(f"data/synthetic-{args.layout}")
        extra = {k: v for k, v in (("old_names", args.old_names), ("persons", args.persons)) if v is not None}
        write_layout(out, args.layout, seed=args.seed, workers=args.workers, **extra, **knobs)
        facts = json.loads((out / "layout.json").read_text())
        print(f"wrote the {args.layout} layout to {out} in {time.perf_counter() - t0:.1f} s")
        for k, v in facts.items():
            print(f"  {k:<22} {v}")
        return 0
    out = args.out or Path(f"data/synthetic-{args.preset}")
    manifest = generate(out, preset=args.preset, seed=args.seed, workers=args.workers, **knobs)
    s = json.loads((out / "summary.json").read_text())
    secs = time.perf_counter() - t0
    rows = [("train tracklets", s["roles"]["train"]), ("query tracklets", s["roles"]["query"]),
            ("gallery tracklets", s["roles"]["gallery"]), ("  of which distractors (pid 0)", s["distractor_tracklets"]),
            ("  of which junk (pid -1)", s["junk_tracklets"]), ("train identities", s["identities"]["train"]),
            ("test identities", s["identities"]["test"]), ("cameras", len(s["cameras"])), ("frames", s["frames"]),
            ("seconds", f"{secs:.1f}")]
    print(f"reid synth: preset {args.preset}, seed {args.seed} -> {manifest}")
    for name, value in rows:
        print(f"  {name:<32} {value:>8}")
    return 0
