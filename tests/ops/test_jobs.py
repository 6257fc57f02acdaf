"""`ray job submit` against a real head node started by `ray start --head` (conftest `head`): token auth and bind
addresses, a tiny training job with its logs, checkpoint and Prometheus metrics.

The 3-epoch reference job (conftest `reference_job`, two Train workers) is the job under test here; the stopped and
resubmitted job (test_stalled_job.py, in a bucket) and the job that loses a node and then a worker process
(test_node_failure.py) must end with its final weights bit for bit (tests/ops/helpers.assert_same_weights).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from reid.evaluation.run.discovery import read_history
from reid.training.metrics import METRIC_NAMES
from tests.ops.helpers import (
    checkpoint_dirs,
    final_state,
    ray_job,
)

pytestmark = pytest.mark.ray


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_head_needs_the_token_and_keeps_the_dashboard_on_loopback(head, submitter):
    env = submitter
    url = f"{head.dashboard_url}/api/version"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=10)
    assert denied.value.code == 401
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["ray_version"] == "2.60.0"

    # a client without RAY_AUTH_MODE=token is refused even when it has the token (ray 2.60 client behaviour)
    no_mode = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    refused = ray_job(no_mode, head.dashboard_url, "list")
    assert refused.returncode != 0
    allowed = ray_job(env, head.dashboard_url, "list")
    assert allowed.returncode == 0, allowed.stderr[-1000:]

    listening = _listen_addresses(head.ports.dashboard)
    assert listening == {"127.0.0.1"}, listening  # the dashboard / Jobs API: loopback only
    # the metrics endpoint listens on every interface and answers without a token: documented, firewall it
    assert _listen_addresses(head.ports.metrics) & {"0.0.0.0", "::"}
    with urllib.request.urlopen(head.metrics_url, timeout=10) as resp:
        assert resp.status == 200


def _listen_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if int(hexport, 16) != port or fields[3] != "0A":  # 0A = LISTEN
                continue
            if width == 8:
                found.add(".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                found.add("::" if int(addr, 16) == 0 else addr)
    return found


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_submitted_training_job_succeeds_with_logs_checkpoint_and_metrics(head, reference_job):
    job = reference_job
    assert job.status == "SUCCEEDED", job.logs[-4000:]
    for epoch in (1, 2, 3):
        assert f"[reid] epoch   {epoch}/3" in job.logs
    assert "[reid] done: 3 epochs" in job.logs
    # rank 0 names this head's dashboard (a free port), not the default port a Ray worker process assumes
    assert f"live: Ray dashboard {head.dashboard_url} (Train, Metrics)" in job.logs, job.logs[-4000:]
    state = final_state(job.run_dir)
    assert state["next_epoch"] == 3
    assert all(torch.isfinite(v.float()).all() for v in state["model"].values())
    assert (job.run_dir / "config.yaml").is_file()
    # each epoch reported once, with the training terms, the throughput, the data wait and validation
    history = read_history(job.run_dir)
    assert [int(h["epoch"]) for h in history] == [1, 2, 3]
    for key in ("loss", "train/ce", "train/triplet", "clips_per_s", "data_wait_s", "val/mAP", "val/R1"):
        assert all(key in h for h in history), key
    # one checkpoint per epoch, all kept (train.keep_checkpoints=5)
    assert len(checkpoint_dirs(job.run_dir)) == 3, sorted(p.name for p in job.run_dir.iterdir())

    missing = [f"ray_{n}" for n in METRIC_NAMES if f"ray_{n}" not in job.metrics]
    assert not missing, (missing, sorted(job.metrics))
    assert {"term=loss", "term=ce", "term=triplet", "run=reference"} <= job.metrics["ray_reid_train_loss"]
    assert {"rank=0", "rank=1"} <= job.metrics["ray_reid_train_clips_per_second"]
    # what infra/prometheus/prometheus.yml points Prometheus at: the head's list of metrics endpoints
    sd = json.loads((head.temp_dir / "prom_metrics_service_discovery.json").read_text())
    targets = [t for group in sd for t in group["targets"]]
    assert any(t.endswith(f":{head.ports.metrics}") for t in targets), targets
