"""`reid prepare <dataset> --root PATH --out DIR`: parse a dataset on disk into DIR/manifest.parquet."""

from __future__ import annotations

import argparse
import json

from reid import storage
from reid.data.datasets import LOADERS, dataset_options, load_dataset, mars_protocol_sets
from reid.data.datasets.common import format_summary, summarize
from reid.data.jpeg_pack import pack_jpeg
from reid.data.pack import PackOptions, pack_manifest
from reid.data.pack_ledger import PackReport
from reid.data.records import write_manifest
from reid.errors import ReidError

DESCRIPTION = """Turn a dataset on disk into a manifest (DIR/manifest.parquet) and print a summary (identities,
tracklets and frames per role; also written to DIR/summary.json). Expected layouts: docs/datasets.md.

  reid prepare mars      --root data/MARS      --out prepared/mars [--protocol official|torchreid] [--attributes CSV]
  reid prepare ilidsvid  --root data/iLIDS-VID --out prepared/ilids-t0 --trial 0
  reid prepare prid2011  --root data/PRID      --out prepared/prid-t0 --trial 0 [--protocol standard|legacy]
  reid prepare duke      --root data/DukeMTMC-VideoReID --out prepared/duke [--attributes CSV]
  reid prepare generic   --root data/mine      --out prepared/mine [--csv tracklets.csv]

Without --pack, frames stay where they are and the manifest stores the dataset root. With --pack video, every
tracklet is encoded into DIR/videos/<tracklet>.mp4 (H.264, no B-frames, short GOP) and the manifest points there.
With --pack jpeg, every tracklet's frames go into Parquet shards DIR/jpeg/shard-*.parquet as JPEG bytes (JPEG frame
files are copied byte for byte), each with an index of its frames' byte ranges (shard-*.index.parquet) so that a
clip reads only its frames; `reid bench data` compares the two stores (docs/datasets.md, "Frame stores").
A frame file that cannot be read is replaced by its tracklet's nearest readable frame (summary.json lists them);
stopped part-way, the same command again keeps what was packed (DIR/videos or DIR/jpeg/pack-ledger.jsonl).
"""

# CLI flag -> loader option; a flag the dataset does not take is an error naming what it does take
_OPTION_FLAGS = {"trial": "--trial", "protocol": "--protocol", "splits": "--splits", "seed": "--seed",
                 "csv": "--csv", "attributes": "--attributes", "check_frames": "--no-check-frames"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=sorted(LOADERS), help="dataset layout")
    parser.add_argument("--root", required=True, help="the dataset's folder on disk")
    parser.add_argument("--out", required=True, help="output folder for manifest.parquet and summary.json")
    parser.add_argument("--trial", type=int, help="split trial (iLIDS-VID, PRID-2011: 0..9)")
    parser.add_argument("--protocol", help="MARS: official|torchreid; PRID-2011: standard|legacy")
    parser.add_argument("--splits", help="split file overriding the default location (iLIDS-VID, PRID-2011)")
    parser.add_argument("--seed", type=int, help="PRID-2011 legacy protocol: seed of the random 50/50 split")
    parser.add_argument("--csv", help="generic: the tracklet CSV (default <root>/tracklets.csv if present)")
    parser.add_argument("--attributes", help="MARS / Duke: attribute CSV joined by (pid, camera, tracklet)")
    parser.add_argument("--no-check-frames", dest="check_frames", action="store_const", const=False,
                        help="MARS: trust the name lists, do not list the frame folders")
    parser.add_argument("--pack", nargs="?", const="jpeg", choices=["video", "jpeg"],
                        help="pack the frames under --out: jpeg (JPEG bytes in Parquet shards; the default, fastest "
                             "to decode per core as measured by `reid bench data`) or video (one H.264 file per "
                             "tracklet, the smallest)")
    parser.add_argument("--workers", type=int, default=1, help="--pack: packing processes (video: a tracklet a task; "
                        "jpeg: a shard of 1024 tracklets a task)")
    parser.add_argument("--gop", type=int, default=PackOptions.gop, help="--pack video: keyframe interval (frames)")
    parser.add_argument("--crf", type=int, default=PackOptions.crf, help="--pack video: x264 quality (lower = better)")
    parser.add_argument("--quality", type=int, default=90, help="--pack jpeg: JPEG quality for frames it encodes")


def run(args: argparse.Namespace) -> int:
    options = {name: getattr(args, name, None) for name in _OPTION_FLAGS}
    given = {k: v for k, v in options.items() if v is not None}
    accepted = dataset_options(args.dataset)
    rejected = [_OPTION_FLAGS[k] for k in given if k not in accepted]
    if rejected:
        raise ReidError(f"{args.dataset} does not take {', '.join(rejected)}; it accepts "
                        f"{', '.join(_OPTION_FLAGS[k] for k in accepted if k in _OPTION_FLAGS) or 'no options'}")
    if args.workers < 1 or args.gop < 1 or not 0 <= args.crf <= 51 or not 1 <= args.quality <= 100:
        raise ReidError("expected --workers >= 1, --gop >= 1, --crf in 0..51 and --quality in 1..100")
    storage.local_only(args.root, "--root", "prepare", writes=False)
    out = storage.local_only(args.out, "--out", "prepare", writes=True)
    manifest = load_dataset(args.dataset, args.root, **given)
    if not manifest.records:
        raise ReidError(f"no tracklets found under {args.root} for dataset '{args.dataset}'")
    out.mkdir(parents=True, exist_ok=True)
    report = PackReport()
    if args.pack == "video":
        manifest = pack_manifest(manifest, out, PackOptions(gop=args.gop, crf=args.crf), workers=args.workers,
                                 report=report)
    elif args.pack == "jpeg":
        manifest = pack_jpeg(manifest, out, quality=args.quality, report=report, workers=args.workers)
    if args.pack and not manifest.records:
        raise ReidError(f"no tracklet under {args.root} has a readable frame; nothing was packed "
                        f"(e.g. {next(iter(report.unreadable.values()))[0]})")
    manifest.validate_paths()
    path = write_manifest(manifest, out / "manifest.parquet")
    summary = summarize(manifest)
    if args.dataset == "mars":
        query, gallery = mars_protocol_sets(manifest.records, manifest.meta.get("protocol", "official"))
        summary["protocol_sets"] = {"query": len(query), "gallery": len(gallery)}
    if args.pack:
        summary["pack"] = {"store": args.pack, **report.as_dict()}
    summary["manifest"] = str(path)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary))
    for line in report.lines():
        print(line)
    if "protocol_sets" in summary:
        print(f"evaluation sets ({summary['protocol']}): {summary['protocol_sets']['query']} queries, "
              f"{summary['protocol_sets']['gallery']} gallery tracklets")
    print(f"wrote {path} and {out / 'summary.json'}")
    return 0
