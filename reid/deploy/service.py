"""`reid serve`: the index behind a Ray Serve HTTP endpoint.

POST / with JSON {"frames": [base64 JPEG, ...]} or {"video": base64 video bytes} (optionally "top_k") returns
{"hits": [{rank, tracklet_id, pid, camid, distance}, ...], "model_hash": ...}. Bad input answers HTTP 400 with
{"error": one line} (no server path in it). GET / answers what is served (`info`), for a browser or a probe.
Requests are batched (`serve.batch`): the tracklets of a batch are embedded one after the other and searched in one
FAISS call. Replicas each load the model and the index.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve

from reid import node_paths, storage
from reid.errors import ReidError

MAX_FRAMES = 512
BODY = 'JSON {"frames": [base64 JPEG, ...]} or {"video": base64}, optionally "top_k"'
USAGE = f"the request body must be {BODY}"


def materialise(body: dict[str, Any], workdir: Path) -> Path:
    """Write the request's frames (or video) under `workdir`; returns the query path for `resolve_query`."""
    try:
        if isinstance(body.get("frames"), list) and body["frames"]:
            if len(body["frames"]) > MAX_FRAMES:
                raise ReidError(f"at most {MAX_FRAMES} frames per request, got {len(body['frames'])}")
            folder = workdir / "tracklet"
            folder.mkdir()
            for i, b64 in enumerate(body["frames"]):
                (folder / f"{i:05d}.jpg").write_bytes(base64.b64decode(b64, validate=True))
            return folder
        if isinstance(body.get("video"), str):
            path = workdir / "tracklet.mp4"
            path.write_bytes(base64.b64decode(body["video"], validate=True))
            return path
    except (binascii.Error, ValueError) as exc:
        raise ReidError(f"frames/video must be base64: {exc}") from None
    raise ReidError(USAGE)


def requested_top_k(body: dict[str, Any], default: int) -> int:
    """The request's "top_k" (default `default`); a positive integer, else a one-line ReidError."""
    k = body.get("top_k", default)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ReidError(f"top_k must be a positive integer, got {json.dumps(k)}")
    return k


def info(meta: dict[str, Any], index_dir: str) -> dict[str, Any]:
    """What GET / answers: the index (its folder's name) and the model behind the endpoint, and how to ask."""
    return {"service": "reid search", "index": Path(index_dir).name, "tracklets": meta["count"],
            "method": meta["method"], "model_hash": meta["model_hash"], "feature_dim": meta["feature_dim"],
            "usage": f"POST / with {BODY}"}


def without_workdir(message: str, workdir: Path) -> str:
    """`message` with the request's temporary folder left out (frame files read as tracklet/00003.jpg)."""
    return message.replace(f"{workdir}{os.sep}", "")


@serve.deployment(max_ongoing_requests=16)  # >= max_batch_size, so a batch can fill
class SearchService:
    def __init__(self, index_dir: str, run: str | None = None, top_k: int = 10) -> None:
        from reid.deploy.runs import load_run
        from reid.deploy.search import open_for
        from reid.deploy.store import load_index
        from reid.ray_runtime import quiet_teardown

        quiet_teardown()  # a SIGTERM (`reid serve` ending) inside a __del__: no traceback on the console
        # a node an autoscaler added after `start` checked the paths: its own line, not "no meta.json" (node_paths)
        node_paths.check_here({"index": index_dir}, "a Serve replica")
        meta = load_index(Path(index_dir)).meta
        run = storage.absolute(run or meta["run"])
        if not storage.is_uri(run):
            node_paths.check_here({"run": run}, "a Serve replica")
        self.run = load_run(run)
        self.gallery = open_for(self.run, Path(index_dir))
        self.top_k = top_k
        self.info = info(self.gallery.meta, index_dir)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _search(self, items: list[tuple[np.ndarray, int]]) -> list[list[dict[str, Any]]]:
        from reid.deploy.search import search_embedding

        out = []
        for emb, k in items:  # FAISS and the hit table per query; the embeddings came in one batch
            out.append([{k2: v for k2, v in h.__dict__.items() if k2 in ("rank", "tracklet_id", "pid", "camid",
                                                                             "distance")}
                        for h in search_embedding(self.gallery, emb, k).hits])
        return out

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _embed(self, queries: list[Path]) -> list[np.ndarray | str]:
        from reid.deploy.query import embed_query, resolve_query

        out: list[np.ndarray | str] = []
        for q in queries:
            try:
                out.append(embed_query(self.run, *resolve_query(q)))
            except ReidError as exc:
                out.append(str(exc))
        return out

    async def __call__(self, request) -> Any:
        from starlette.responses import JSONResponse

        if request.method in ("GET", "HEAD"):
            return JSONResponse(self.info)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the request body is not JSON"}, status_code=400)
        workdir = Path(tempfile.mkdtemp(prefix="reid-serve-"))
        try:
            if not isinstance(body, dict):
                raise ReidError("the request body must be a JSON object")
            k = requested_top_k(body, self.top_k)
            emb = await self._embed(materialise(body, workdir))
            if isinstance(emb, str):
                raise ReidError(emb)
            hits = await self._search((emb, k))
        except ReidError as exc:
            return JSONResponse({"error": without_workdir(str(exc), workdir)}, status_code=400)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return JSONResponse({"hits": hits, "model_hash": self.run.model_hash})


def start(index_dir: Path, *, run: str | None = None, replicas: int = 1, host: str = "127.0.0.1",
          port: int = 8000, top_k: int = 10, num_cpus: float = 0.5) -> str:
    """Start Ray (if needed) and Serve, deploy, and return the endpoint URL."""
    from reid.config.schema import RayConfig
    from reid.deploy.store import load_index
    from reid.training.driver import init_ray

    meta = load_index(Path(index_dir)).meta  # a clear error here rather than in a replica's log
    # Serve marks its HTTP proxy dead after 3 missed 5 s readiness checks; a busy 2-core machine misses them while
    # the replicas import torch. Read by the Serve controller, which inherits the environment of a local cluster.
    for name in ("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S"):
        os.environ.setdefault(name, "60")
    # Serve's controller, proxy and replicas log every request and deployment step at INFO; to their files under
    # <session>/logs/serve/ only, not the console, where a load test's summary drowned in one line per request
    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    import ray

    from reid.ray_runtime import cluster_address

    if not ray.is_initialized() and cluster_address(RayConfig()) is None:  # a local cluster: Serve's HTTP proxy
        check_port(host, port)  # will listen on this machine (on a cluster's head otherwise: not checked from here)
    init_ray(RayConfig())  # the project's one Ray start-up (a local cluster unless ray.address / $RAY_ADDRESS)
    check_replicas(replicas, num_cpus)
    # each replica loads the index and the run on its own node (reid/node_paths.py); Serve would retry a replica
    # that cannot, its error in a log file
    paths = {"index": str(Path(index_dir).resolve()), "run": storage.absolute(run or meta["run"])}
    node_paths.finish(node_paths.start({k: v for k, v in paths.items() if "://" not in v}), workers="its replicas")
    # the driver's own Serve lines at INFO: "Started Serve", serve.run's "Connecting to existing Serve app ... New
    # http_options will not be applied" (the options of serve.start below are), and the URL the command prints
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(http_options={"host": host, "port": port})
    # the replicas get the setting in their runtime env too: on a cluster `reid` did not start, the processes keep
    # the cluster's environment (Ray merges an actor's env_vars with the job's)
    quiet = {"env_vars": {"RAY_SERVE_LOG_TO_STDERR": os.environ["RAY_SERVE_LOG_TO_STDERR"]}}
    app = SearchService.options(num_replicas=replicas, ray_actor_options={"num_cpus": num_cpus,
                                                                          "runtime_env": quiet}).bind(
        str(Path(index_dir).resolve()), storage.absolute(run) if run else None, top_k)
    serve.run(app, name="reid", route_prefix="/")
    return f"http://{host}:{port}/"


def check_port(host: str, port: int) -> None:
    """A ReidError in one line when this machine cannot listen on `host`:`port` (Serve's proxy failed later with
    "RuntimeError: Failed to bind to address"): the port taken by another process, or `host` not one of its
    addresses. Bound with SO_REUSEADDR, as Serve's server binds: a port a stopped service left in TIME_WAIT passes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror:
            raise ReidError(f"--host {host}: not a name or address this machine knows") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ReidError(f"--port {port}: another process listens on {host}:{port} already; pick another "
                                f"--port, or stop what holds it (`ss -ltnp 'sport = :{port}'` names it)") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ReidError(f"--host {host}: not an address of this machine (127.0.0.1: this machine only; "
                                f"0.0.0.0: every interface)") from None
            raise ReidError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def check_replicas(replicas: int, num_cpus: float) -> None:
    """Replicas the cluster's nodes cannot hold: Serve would wait for them without a word on the console (its log
    goes to files), `reid serve` with it. An error on a local cluster, which never grows; a line elsewhere."""
    from reid.training.driver import check_capacity

    check_capacity(replicas, {"CPU": num_cpus}, asked=f"--replicas {replicas} Serve replicas",
                   fix="fewer --replicas, or a larger cluster ($RAY_ADDRESS)",
                   waiting="the endpoint answers once the cluster holds them (Ctrl-C stops it)")


def stop() -> None:
    serve.shutdown()
