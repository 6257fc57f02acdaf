"""Before Ray work on a cluster of several nodes: the local paths it reads and writes, seen from every node that may
run its workers (a fit's Train workers and decoding actors; the decoding actors of `reid eval --backend ray` and
`reid index`; a sweep's trials; `reid serve`'s replicas; `reid pose`'s actors).

Train workers validate on frames they read themselves, decoding actors may start on any node with CPUs, and every
rank writes its checkpoints under `ray.storage_path`: a local path of the driver's machine has to be there on the
other nodes too. Tried here (2026-12-07; a head, and a second raylet started in a private mount namespace that hides
the dataset's directory, as a worker node without the head's local disk): `reid train baseline
data.root=/tmp/nsdata/tiny ray.num_workers=2 ...` trained its first epoch, then rank 1's validation ended the run
with `cannot open video /tmp/nsdata/tiny/videos/0008C2T0002.mp4: Error reading ...`, a file the user finds where
they look; with `ray.max_failures=3`, as the real-dataset recipes set, after four attempts of the worker group.

On the same cluster with a head without CPUs (as on KubeRay), `reid eval RUN --backend ray data.root=<that path>`
ended with a Ray Data traceback of 30 lines on the console and `reid eval: error: SystemException`.

`reid serve` there, with its index in that directory, printed 286 lines of the Serve controller's tracebacks and
ended with `RuntimeError: Deploying application reid failed`.

`start` sends one zero-CPU task to each other live node with CPUs or GPUs (pinned there) that checks the local
paths (`data.root`, the manifest, `model.weights_path`, `train.init_from`) and looks for a marker the driver wrote
under `ray.storage_path` (an existing directory of the same name on each node is not enough: it has to be the same
directory). `finish` waits for the answers, at most `TIMEOUT_S` (the tasks run while the driver's other pre-flight
checks do) and raises one `ReidError` naming the paths, the nodes and what to do. URIs are not checked here
(pyarrow reads them the same from every node), nor nodes that did not answer in time (a line says so). A node that
joins after the work starts (an autoscaler's GPU node) is checked by each Train worker, decoding actor, Serve
replica and pose actor as it starts (`check_here`: the same message for its own node, before it reads anything).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reid import storage
from reid.config.schema import ExperimentConfig
from reid.errors import ReidError

TIMEOUT_S = 60.0
MARKER_PREFIX = ".reid-node-check-"

ADVICE = {
    "data.root": "every node reads the frames itself: put the dataset where all nodes see it (a shared file system "
                 "such as /shared/data, or a bucket: data.root=s3://...), or a copy at the same path on each node",
    "manifest": "the workers read the manifest: keep it beside the dataset on storage every node sees",
    "model.weights_path": "put the weights where all nodes see them (/shared/torch) or in a bucket",
    "train.init_from": "put the run it starts from where all nodes see it, or in a bucket",
    "ray.storage_path": "checkpoints written there would not reach the driver or survive a node: use a shared file "
                        "system (ray.storage_path=/shared/runs) or a bucket (ray.storage_path=s3://...)",
    "index": "every Serve replica loads the index itself: write it where all nodes see it (reid index ... --out "
             "/shared/indexes/NAME)",
    "run": "every Serve replica loads the run's model itself (the index's run, or --run): keep the run where all "
           "nodes see it (/shared/runs)",
    "--out": "the trials write their runs and checkpoints there: use a shared file system (--out /shared/tune) or a "
             "bucket (--out s3://bucket/tune)",
}
STORAGE = "storage"  # what `missing_here` names when the driver's marker is not there


@dataclass
class NodeCheck:
    """The answers still to come (`finish`): object refs by node, the marker to remove."""
    paths: dict[str, str]  # by config key; the storage directory under STORAGE
    marker: Path | None
    storage_key: str = "ray.storage_path"
    storage_advice: str | None = None  # ADVICE[storage_key] unless given
    pending: dict[Any, str] = field(default_factory=dict)  # ObjectRef -> node description


def local_paths(cfg: ExperimentConfig, manifest_path: Path | str, storage_root: str | None = None) -> dict[str, str]:
    """{config key: absolute local path} that every node must see; URIs and unset keys left out, and the manifest
    when it lies in the dataset or in the run's storage (the run's manifest-val.parquet), which their keys cover."""
    model = dict(cfg.model)  # the method's own section (a mapping)
    candidates = {"data.root": cfg.data.root, "manifest": str(manifest_path),
                  "model.weights_path": model.get("weights_path") if model.get("pretrained") else None,
                  "train.init_from": cfg.train.init_from}
    paths = {k: str(Path(v).expanduser().resolve()) for k, v in candidates.items()
             if isinstance(v, str) and v and "://" not in v}
    covering = [paths.get("data.root")] + ([storage_root] if storage_root and not storage.is_uri(storage_root) else [])
    if "manifest" in paths and any(c and Path(paths["manifest"]).is_relative_to(c) for c in covering):
        del paths["manifest"]
    return paths


def missing_here(paths: dict[str, str], marker: str | None) -> list[str]:
    """The keys of `paths` this process cannot see, and `STORAGE` when `marker` is not there (the body of the task on
    each node)."""
    missing = [key for key, path in paths.items() if not os.path.exists(path)]
    if marker is not None and not os.path.exists(marker):
        missing.append(STORAGE)
    return missing


def _describe(node: dict[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')}, node {str(node.get('NodeID', ''))[:8]}"


def start(paths: dict[str, str], storage_root: str | None = None, storage_key: str = "ray.storage_path",
          storage_advice: str | None = None) -> NodeCheck | None:
    """Send the checks of `paths` ({config key: local path}, `local_paths`) and of the `storage_root` directory (a
    local path; None or a URI: not checked; `storage_key` names it: `ray.storage_path`, a sweep's `--out`, with
    `storage_advice` when ADVICE has none for it) to the other nodes; None on a single-node cluster or with nothing
    to check."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("NodeID") != here
             and (n.get("Resources", {}).get("CPU", 0) > 0 or n.get("Resources", {}).get("GPU", 0) > 0)]
    local_storage = bool(storage_root) and not storage.is_uri(storage_root)
    if not nodes or not (paths or local_storage):
        return None
    marker = None
    if local_storage:
        Path(storage_root).mkdir(parents=True, exist_ok=True)
        marker = Path(storage_root, f"{MARKER_PREFIX}{uuid.uuid4().hex[:12]}")
        marker.write_text("written by the driver of a reid command; removed after the check\n")
    task = ray.remote(num_cpus=0, max_retries=0)(missing_here)
    check = NodeCheck(paths={**paths, **({STORAGE: storage_root} if local_storage else {})}, marker=marker,
                      storage_key=storage_key, storage_advice=storage_advice)
    for node in nodes:
        ref = task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
            paths, str(marker) if marker else None)
        check.pending[ref] = _describe(node)
    return check


def finish(check: NodeCheck | None, timeout_s: float = TIMEOUT_S, workers: str = "this fit's workers") -> None:
    """Wait for the answers (at most `timeout_s`); raise `ReidError` when a node misses a path (`workers`: what may
    run there, in the message)."""
    if check is None:
        return
    import ray

    try:
        ready, late = ray.wait(list(check.pending), num_returns=len(check.pending), timeout=timeout_s)
        missing: dict[str, list[str]] = {}
        for ref in ready:
            try:
                keys = ray.get(ref)
            except Exception:  # the node went away, or its worker could not start: not a verdict on the paths
                late.append(ref)
                continue
            for key in keys:
                missing.setdefault(key, []).append(check.pending[ref])
    finally:
        if check.marker is not None:
            check.marker.unlink(missing_ok=True)
    if late:
        print(f"[reid] note: {len(late)} node(s) did not answer the check of the run's paths "
              f"({', '.join(check.pending[r] for r in late)}); not checked there", flush=True)
    if missing:
        raise ReidError(" ".join(
            sentence(check.storage_key if key == STORAGE else key, check.paths[key], storage=key == STORAGE,
                     where=f"{len(where)} node{'s' if len(where) > 1 else ''} that may run {workers} "
                           f"({'; '.join(where)})",
                     advice=check.storage_advice if key == STORAGE else None)
            for key, where in missing.items()))


def sentence(name: str, path: str, *, storage: bool, where: str, advice: str | None = None) -> str:
    """`data.root=/x is missing on <where>. <advice>.` (`storage`: "is another directory")."""
    advice = advice or ADVICE[name]
    return (f"{name}={path} is {'another directory' if storage else 'missing'} on {where}. "
            f"{advice[0].upper()}{advice[1:]}.")


def check_here(paths: dict[str, str], role: str) -> None:
    """In a worker as it starts (`role`: "Train worker rank 1"): `ReidError` when this node lacks one of `paths`.
    The driver's check (`start`, `finish`) saw the nodes of the cluster as the fit started; an autoscaler adds GPU
    nodes later, and a worker there would otherwise fail only when it first reads a frame."""
    missing = missing_here(paths, None)
    if missing:
        where = f"this node ({_address()}), where {role} runs"
        raise ReidError(" ".join(sentence(key, paths[key], storage=False, where=where) for key in missing))


def _address() -> str:
    """This node's address as Ray names it (as in `finish`'s lines); the host name outside Ray."""
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # not a Ray process
        import socket

        return socket.gethostname()
