"""`reid index`: gallery embeddings (Ray Data batch inference, or this process for a small gallery without a
cluster) -> Parquet + FAISS index directory."""

from __future__ import annotations

import argparse

from reid.evaluation.run.backend import AUTO_HELP, BACKENDS

DESCRIPTION = """Embed the gallery tracklets of a manifest with a trained run and index them.

  reid index runs/baseline-default-synthetic-s0 --manifest data/synthetic-demo/manifest.parquet --out idx
  reid index RUN --manifest new-footage.parquet --out idx --add        # append new tracklets

Writes DIR/gallery.parquet (tracklet_id, pid, camid, source, embedding), DIR/index.faiss (exact below 50,000
tracklets, HNSW or IVF-PQ above) and DIR/meta.json (model hash, feature dim, distance)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory (holding config.yaml) or a checkpoint directory inside one; "
                        "local or a URI (s3://bucket/runs/<name>)")
    parser.add_argument("--manifest", required=True, help="Parquet manifest whose tracklets are indexed (a path or "
                        "URI, or the dataset folder holding it)")
    parser.add_argument("--out", required=True, help="index directory")
    parser.add_argument("--add", action="store_true", help="append to an existing index (same model only)")
    parser.add_argument("--role", action="append", default=None,
                        help="manifest roles to index (repeatable; default gallery)")
    parser.add_argument("--kind", choices=["auto", "flat", "hnsw", "ivfpq"], default="auto",
                        help="FAISS index kind (default: exact up to 50,000 tracklets)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help=AUTO_HELP)


def run(args: argparse.Namespace) -> int:
    from reid import storage
    from reid.commands.common import setup_logging
    from reid.deploy.gallery import index_manifest
    from reid.deploy.runs import load_run

    setup_logging()
    loaded = load_run(args.run)
    roles = tuple(args.role or ["gallery"])
    out = storage.local_only(args.out, "--out", "index", writes=True)
    added, total = index_manifest(loaded, args.manifest, out, roles=roles, add=args.add,
                                  kind=args.kind, backend=args.backend)
    if args.add and added == 0:
        print(f"nothing to add: every {'/'.join(roles)} tracklet of {args.manifest} is in the "
              f"index already ({total} in {args.out})")
        return 0
    print(f"indexed {added} tracklets ({total} in the index) with {loaded.cfg.method}, model hash "
          f"{loaded.model_hash}, in {args.out}")
    return 0
