"""`reid search`: top-k gallery tracklets for a query tracklet, printed and written as a small HTML page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DESCRIPTION = """Search an index (`reid index`) with one tracklet.

  reid search idx --query path/to/frames_dir            # a directory of JPEG/PNG frames of one person
  reid search idx --query clip.mp4 --top-k 20 --rerank
  reid search idx --query data/synthetic-demo/manifest.parquet --row 0061C3T0004   # without --row: some listed

The model is the run recorded in the index (or --run); an index built by another model is refused."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="index directory written by `reid index`")
    parser.add_argument("--query", required=True, help="frames directory, video file, or manifest (.parquet)")
    parser.add_argument("--row", help="tracklet_id (or row number) when --query is a manifest")
    parser.add_argument("--run", help="run to embed the query with (default: the one that built the index)")
    parser.add_argument("--top-k", type=int, default=10, help="hits to show (default 10)")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking of the top candidates")
    parser.add_argument("--html", help="HTML page to write (default <index>/search-<query>.html)")
    parser.add_argument("--json", action="store_true", help="print the hits as JSON")


def query_line(rec) -> str:
    """`query 0001C1T0001: pid 1, camera 1, 24 frames (train)`; a frames directory or a video has no identity."""
    who = f"pid {rec.pid}, camera {rec.camid}, " if rec.pid >= 0 else ""
    role = f" ({rec.role})" if rec.role and rec.role != "query" else ""
    return f"query {rec.tracklet_id}: {who}{rec.num_frames} frames{role}"


def run(args: argparse.Namespace) -> int:
    from reid import storage
    from reid.deploy import store
    from reid.deploy.page import write_page
    from reid.deploy.query import embed_query, resolve_query
    from reid.deploy.runs import load_run
    from reid.deploy.search import first_match_line, known_identity, match, open_for, search_embedding
    from reid.errors import ReidError

    if args.top_k < 1:
        raise ReidError("--top-k must be at least 1")
    index_dir = storage.local_only(args.index, "index", "search", writes=False)
    meta = store.load_index(index_dir).meta  # a clear error before loading any model
    query = resolve_query(storage.local_only(args.query, "--query", "search", writes=False), args.row)
    loaded = load_run(args.run or meta["run"])
    gallery = open_for(loaded, index_dir)
    result = search_embedding(gallery, embed_query(loaded, *query), args.top_k, rerank=args.rerank)
    rec = query[0].records[query[1]]
    known = known_identity(rec, query[0].meta)
    if args.json:
        print(json.dumps([{**h.__dict__, **({"match": match(rec, h)} if known else {})} for h in result.hits],
                         indent=1))
    else:
        print(query_line(rec))
        print(f"{'rank':>4}  {'distance':>9}  {'pid':>5} {'cam':>3}  {'tracklet':<16}{'  match' if known else ''}")
        for h in result.hits:
            mark = f"  {match(rec, h)}" if known else ""
            print(f"{h.rank:>4}  {h.distance:>9.4f}  {h.pid:>5} {h.camid:>3}  {h.tracklet_id:<16}{mark}".rstrip())
        if known:
            print(first_match_line(rec, result.hits))
    page = Path(args.html) if args.html else index_dir / f"search-{rec.tracklet_id}.html"
    print(f"page: {write_page(page, rec.tracklet_id, query, result.hits, result.reranked, known=known)}")
    return 0
