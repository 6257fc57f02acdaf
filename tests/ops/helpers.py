"""Helpers of the operations tests: tiny configs, job submission through the `ray` CLI, status polling."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reid.config import build_config
from reid.evaluation.run.discovery import complete_checkpoints
from reid.training.checkpoint import load_state

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# tries to start a Ray node: ray gives a raylet a fixed 30 s to register, which a busy machine can miss
ATTEMPTS = 3

# the spine's tiny recipe (tests/training/conftest.py): ResNet-18 at 64x32, T=2, P=K=2, 2 batches per epoch
TINY = ["model.depth=18", "model.pretrained=false", "data.height=64", "data.width=32", "data.seq_len=2",
        "data.ids_per_batch=2", "data.tracklets_per_id=2", "data.batches_per_epoch=2", "data.test_sampler=restricted",
        "data.augment.pad=2", "scheduler.warmup_epochs=0", "eval.batch_size=16"]
# two Ray Train workers on a 2-CPU machine: fractional CPUs for the workers and the decoding actor
RAY_TINY = ["ray.num_workers=2", "ray.cpus_per_worker=0.5", "data.decode_cpus=0.25"]
# what the job, kill and resume runs share, so that their final weights can be compared
SHARED_RUN = [*TINY, *RAY_TINY, "train.epochs=3", "train.eval_every=1", "train.keep_checkpoints=5"]


def tiny_overrides(data: Path, storage: Path, name: str, *extra: str) -> list[str]:
    """`reid train` arguments of the shared tiny run (method first, as on the command line)."""
    return ["baseline", f"data.root={data}", f"ray.storage_path={storage}", f"name={name}", *SHARED_RUN, *extra]


def tiny_config(data: Path, storage: Path, name: str, *extra: str):
    return build_config("baseline", [], tiny_overrides(data, storage, name, *extra)[1:])


@contextlib.contextmanager
def token_mode():
    """RAY_AUTH_MODE=token for this process while connected as a driver, then the previous value.

    The mode is read into Ray's cached config (and the token into a cached loader) the first time Ray needs it; a
    process that imported Ray before setting the variable must refresh both, as ray.init() does for the local
    clusters it starts, or it connects without a token and the GCS refuses it (InvalidAuthToken)."""
    from ray._private.authentication_test_utils import reset_auth_token_state

    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "token"
    reset_auth_token_state()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = before
        reset_auth_token_state()


def short_tmpdir(prefix: str) -> Path:
    """Ray's unix sockets live under the temp dir and their paths must stay under ~100 characters."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def submitter_env(tmp_home: Path) -> dict[str, str]:
    """The environment of someone who submits jobs: the token only through RAY_AUTH_TOKEN (as a remote submitter
    has it, from `python -m jobs.local_cluster token`), and a HOME without ~/.ray/auth_token."""
    token = subprocess.run([sys.executable, "-m", "jobs.local_cluster", "token"], capture_output=True, text=True,
                           check=True, cwd=PROJECT_ROOT).stdout.strip()
    tmp_home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    return {**env, "HOME": str(tmp_home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


def ray_job(env: dict[str, str], address: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    from jobs.local_cluster import ray_cli

    return subprocess.run([ray_cli(), "job", *args, "--address", address], env=env, capture_output=True,
                          text=True, timeout=timeout)


def job_status(env: dict[str, str], address: str, job_id: str) -> str:
    """SUCCEEDED / FAILED / STOPPED / RUNNING / PENDING, from the job server's REST API (`GET /api/jobs/<id>`, what
    `ray job status` reads) with the submitter's token. Not the `ray` CLI: one `ray` process costs about 3 s of CPU
    to start, and a poll every second took most of a core from the job it waited for on a 2-core machine."""
    request = urllib.request.Request(f"{address.rstrip('/')}/api/jobs/{job_id}",
                                     headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return str(json.loads(resp.read())["status"])
    except urllib.error.HTTPError as exc:
        return f"UNKNOWN: HTTP {exc.code} {exc.read()[-300:]!r}"
    except (urllib.error.URLError, OSError) as exc:  # the dashboard busy or restarting: the poll tries again
        return f"UNKNOWN: {exc}"


def wait_for_status(env: dict[str, str], address: str, job_id: str, wanted: set[str], timeout_s: float,
                    on_poll=None) -> str:
    deadline = time.monotonic() + timeout_s
    status = "UNKNOWN"
    while time.monotonic() < deadline:
        if on_poll is not None:
            on_poll()
        status = job_status(env, address, job_id)
        if status in wanted:
            return status
        time.sleep(1.0)
    raise TimeoutError(f"job {job_id} still {status} after {timeout_s:.0f}s")


@dataclass
class JobRun:
    job_id: str
    run_dir: Path
    status: str
    logs: str
    metrics: dict[str, set[str]] = field(default_factory=dict)  # scraped name -> labels seen ("term=ce", ...)


def submit_train(env: dict[str, str], address: str, job_id: str, reid_args: list[str], *, wait: bool,
                 timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m jobs.submit train ...`: the project's wrapper around `ray job submit`."""
    cmd = [sys.executable, "-m", "jobs.submit", "train", "--address", address, "--submission-id", job_id,
           "--python", sys.executable,  # the cluster runs from this checkout, not the image
           *([] if wait else ["--no-wait"]), "--", *reid_args]
    return subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def scrape_reid_metrics(url: str, into: dict[str, set[str]]) -> set[str]:
    """Add every `ray_reid_*` sample of the Prometheus text at `url` to `into` (name -> "key=value" labels);
    returns the names present in this scrape."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # no token: the endpoint has no auth (see docs)
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return set()
    present = set()
    for line in text.splitlines():
        if line.startswith("ray_reid_"):
            name, _, rest = line.partition("{")
            labels = re.findall(r'(\w+)="([^"]*)"', rest.rsplit("}", 1)[0])
            into.setdefault(name, set()).update(f"{k}={v}" for k, v in labels)
            present.add(name)
    return present


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Ray Train's checkpoint directories of a run (not checkpoint_manager_snapshot.json)."""
    return sorted(p for p in run_dir.glob("checkpoint_*") if p.is_dir())


def damage_first_batch(cfg) -> list[int]:
    """Make two training videos that the first batch of epoch 0 decodes unreadable (one overwritten with garbage,
    one cut to its first KiB) in `cfg.data.root` (a copy: this writes to it); returns their record indices in the
    manifest the run trains on (the shipped one less the identities held out for validation)."""
    from reid.data.plan import global_plan
    from reid.data.records import read_manifest
    from reid.data.validation import with_validation_split
    from reid.registry import get_method

    data = Path(cfg.data.root)
    manifest = with_validation_split(read_manifest(data), cfg.data.val_identities)
    first = global_plan(manifest.records, cfg.data, cfg.seed, get_method(cfg.method).batching, 0, 1)[0]
    victims = sorted({int(i) for i in first.indices})[:2]
    paths = [data / manifest.records[i].video for i in victims]
    paths[0].write_bytes(b"\x00garbage" * 512)
    paths[1].write_bytes(paths[1].read_bytes()[:1024])
    return victims


class MetricsScraper:
    """Scrapes a Prometheus endpoint every `period_s` in a background thread while a job runs.

    Ray 2.60's metrics agent drops a gauge about two export intervals after the worker last set it, and the workers
    set ours once per epoch, so a scraper has to be looking within that window (as Prometheus does every 10 s)."""

    def __init__(self, url: str, period_s: float = 0.5) -> None:
        import threading

        self.url, self.period_s = url, period_s
        self.seen: dict[str, set[str]] = {}
        self.timeline: list[tuple[float, set[str]]] = []  # (time, names present) per scrape, for diagnostics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.timeline.append((time.time(), scrape_reid_metrics(self.url, self.seen)))
            self._stop.wait(self.period_s)

    def __enter__(self) -> MetricsScraper:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def final_state(run_dir: Path) -> dict:
    """The state of the run's whole checkpoint with the highest next_epoch (a checkpoint whose copy into storage was
    cut short by a killed worker is left out, as Ray leaves it out of its record)."""
    ckpts = complete_checkpoints(run_dir)
    assert ckpts, f"no checkpoint in {run_dir}: {sorted(p.name for p in run_dir.iterdir())}"
    return max((load_state(c) for c in ckpts), key=lambda s: s["next_epoch"])


def assert_same_weights(a: dict, b: dict) -> None:
    """Two model state dicts are equal bit for bit: weights, BatchNorm running statistics and step counters.

    Exact by design, wherever and however the runs were interrupted: each rank's batches and random draws are a pure
    function of (seed, epoch, rank) (reid/data/pipeline.py), so rank 0's BatchNorm statistics, which the checkpoint
    holds, are the same in every run of one configuration, and DDP averages the same gradients."""
    assert a.keys() == b.keys()
    differ = [key for key in a if not torch.equal(a[key], b[key])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, first: {differ[:5]}"


@contextlib.contextmanager
def local_head(prefix: str, extra_env: dict[str, str] | None = None) -> Iterator:
    """A head node of its own (`ray start --head`: 2 CPUs, a 300 MB object store, free ports, its own temp dir named
    `prefix...`), started again when a busy machine misses Ray's fixed 30 s node start-up deadline; stopped at once
    (no drain) and its temp dir removed on exit. `extra_env` goes to every process of the node."""
    from jobs.local_cluster import HeadPorts, LocalHead

    temp = short_tmpdir(prefix)
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", **(extra_env or {})}
    node = None
    try:
        for attempt in range(ATTEMPTS):
            node = LocalHead(temp_dir=temp / f"ray{attempt}", num_cpus=2, ports=HeadPorts.free(),
                             object_store_memory=300 * 1024**2, extra_env=env, block=True)
            try:
                node.start(timeout_s=240)
                break
            except (RuntimeError, TimeoutError):
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(10)
        yield node
    finally:
        if node is not None:
            node.stop()
        shutil.rmtree(temp, ignore_errors=True)
