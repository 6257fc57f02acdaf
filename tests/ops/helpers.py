"""Helpers of the operations tests: tiny configs, job submission through the `ray` CLI, status polling."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reid.config import build_config
from reid.training.checkpoint import load_state

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# the spine's tiny recipe (tests/training/conftest.py): ResNet-18 at 64x32, T=2, P=K=2, 2 batches per epoch
TINY = ["model.depth=18", "model.pretrained=false", "data.height=64", "data.width=32", "data.seq_len=2",
        "data.ids_per_batch=2", "data.tracklets_per_id=2", "data.batches_per_epoch=2", "data.test_sampler=restricted",
        "data.augment.pad=2", "scheduler.warmup_epochs=0", "eval.batch_size=16"]
# two Ray Train workers on a 2-CPU machine: fractional CPUs for the workers and the decoding actor
RAY_TINY = ["ray.num_workers=2", "ray.cpus_per_worker=0.5", "data.decode_cpus=0.25"]
# what the job, kill and resume runs share, so that their final weights can be compared
SHARED_RUN = [*TINY, *RAY_TINY, "train.epochs=3", "train.eval_every=1", "train.keep_checkpoints=5"]


def tiny_overrides(data: Path, storage: Path, name: str, *extra: str) -> list[str]:
    return [f"data.root={data}", f"ray.storage_path={storage}", f"name={name}", *SHARED_RUN, *extra]


def tiny_config(data: Path, storage: Path, name: str, *extra: str):
    return build_config("baseline", [], tiny_overrides(data, storage, name, *extra))


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
    out = ray_job(env, address, "status", job_id, "--log-style", "record")
    found = re.search(rf"Status for job '{re.escape(job_id)}': (\w+)", out.stdout + out.stderr)
    return found.group(1) if found else "UNKNOWN: " + (out.stdout + out.stderr)[-300:]


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
           *([] if wait else ["--no-wait"]), "--", *reid_args]
    return subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def scrape_reid_metrics(url: str, into: dict[str, set[str]]) -> None:
    """Add every `ray_reid_*` sample of the Prometheus text at `url` to `into` (name -> "key=value" labels)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # no token: the endpoint has no auth (see docs)
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return
    for line in text.splitlines():
        if line.startswith("ray_reid_"):
            name, _, rest = line.partition("{")
            labels = re.findall(r'(\w+)="([^"]*)"', rest.rsplit("}", 1)[0])
            into.setdefault(name, set()).update(f"{k}={v}" for k, v in labels)


def final_state(run_dir: Path) -> dict:
    """The state of the run's checkpoint with the highest next_epoch."""
    ckpts = sorted(run_dir.glob("checkpoint_*")) + sorted(run_dir.glob("checkpoints/epoch_*"))
    assert ckpts, f"no checkpoint in {run_dir}: {sorted(p.name for p in run_dir.iterdir())}"
    return max((load_state(c) for c in ckpts), key=lambda s: s["next_epoch"])


def assert_same_weights(a: dict, b: dict, atol: float = 1e-4) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=atol), key
