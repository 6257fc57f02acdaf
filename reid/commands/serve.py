"""`reid serve`: an index behind a Ray Serve HTTP endpoint (top-k JSON for a posted tracklet)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DESCRIPTION = """Serve an index (`reid index`) over HTTP with Ray Serve.

  reid serve idx --replicas 2 --port 8000
  curl -X POST localhost:8000/ -d '{"frames": ["<base64 JPEG>", ...], "top_k": 5}'
  reid serve idx --load-test 100 --concurrency 4 --load-seconds 60     # bounded load test, then exit

Body: {"frames": [base64 JPEG, ...]} or {"video": base64}; answer: {"hits": [...], "model_hash": ...}.
GET / answers what is served (index, tracklets, method, model hash): for a browser or a readiness probe."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="index directory written by `reid index`")
    parser.add_argument("--run", help="run to embed queries with (default: the one that built the index)")
    parser.add_argument("--replicas", type=int, default=1, help="Serve replicas, each with the model (default 1)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument("--top-k", type=int, default=10, help="hits per answer unless a request sets top_k "
                                                              "(default 10)")
    parser.add_argument("--load-test", type=int, default=0, metavar="N",
                        help="send N requests (a gallery tracklet of the index) to the endpoint, report, exit")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight in the load test (default 4)")
    parser.add_argument("--load-seconds", type=float, default=60.0, help="time bound of the load test")


def run(args: argparse.Namespace) -> int:
    from reid import storage
    from reid.deploy import service
    from reid.errors import ReidError

    if args.replicas < 1:
        raise ReidError("--replicas must be at least 1")
    if args.top_k < 1:
        raise ReidError("--top-k must be at least 1")
    from reid.deploy.store import load_index

    storage.local_only(args.index, "index", "serve", writes=False)
    meta = load_index(Path(args.index)).meta   # a missing or broken index is one line before anything starts
    # Serve's start-up and the replicas' model loading take 15-25 s on 2 cores, with nothing else to show for it
    print(f"[reid] starting {args.replicas} replica(s) of the search service for {args.index} ({meta['count']} "
          f"tracklets, {meta['method']}) ...", flush=True)
    url = service.start(Path(args.index), run=args.run, replicas=args.replicas, host=args.host, port=args.port,
                        top_k=args.top_k)
    from reid.ray_runtime import ray_log_dir

    logs = ray_log_dir()
    where = f"; request log: {logs / 'serve'}/" if logs else ""
    print(f"serving {args.index} at {url} ({args.replicas} replica(s){where})", flush=True)
    try:
        if args.load_test:
            from reid.deploy.loadtest import frames_payload, run_load

            result = run_load(url.replace(args.host, "127.0.0.1"), frames_payload(_sample_frames(Path(args.index))),
                              requests=args.load_test, concurrency=args.concurrency, max_seconds=args.load_seconds)
            print(f"load test ({args.replicas} replica(s), concurrency {args.concurrency}): {result.line()}")
            return 0 if result.ok else 1
        while True:
            time.sleep(3600)
    finally:
        service.stop()


def _sample_frames(index_dir: Path):
    """Frames [T, H, W, 3] of the index's first gallery tracklet (the load test's request)."""
    import numpy as np

    from reid.data.decode import Decoder, read_frames
    from reid.data.records import read_manifest
    from reid.deploy.store import load_index

    g = load_index(index_dir)
    m = read_manifest(g.table.column("source")[0].as_py())
    rec = m.records[g.table.column("record")[0].as_py()]
    decoder = Decoder(timeout_s=None)
    try:
        return read_frames(m, rec, np.arange(rec.num_frames), decoder)
    finally:
        decoder.close()
