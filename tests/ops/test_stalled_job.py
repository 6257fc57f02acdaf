"""One submitted job that stalls, in a bucket, serves two scenarios (one Ray Train fit fewer than a job each):

1. the monitoring stack against a real Prometheus and a real run: Prometheus (Debian's `prometheus` package; without
   it this test skips and says so) scrapes the head from before the job starts (tests/ops/prometheus.py). The job
   trains epoch 1 (steps, validation), then stalls before the first step of epoch 2 (`train.inject_fault=stall@2:1`,
   300 s). While it stalls, every Grafana panel query must return a series of this run, every alert expression must
   evaluate, every metric an alert reads must exist, and ReidTrainingStalled must fire. With REID_BOARD_DATA=<file>
   the panels' time series are written there for infra/grafana/render_board.py.
2. the bucket test of issue 18, and the job stop / resume test: the job is a `ray job submit` (through
   `jobs.submit`) of a 2-worker training whose data (the manifest and the frames), checkpoints and outputs all live in
   an S3 bucket (moto's server on 127.0.0.1). Stopped in its stall with `ray job stop` and resubmitted with
   `--resume s3://...`, it ends with the same weights, bit for bit, as the same run done in one go: the ops tests'
   reference job (conftest `reference_job`), which ran the same configuration from a local folder into local
   storage, so the comparison also shows that where the data and the runs live changes nothing; the bucket's
   `metrics.jsonl` keeps epoch 1's metrics. (A NaN loss in a bucket run: test_storage_train.py; a worker node lost
   and a worker process killed mid-run: test_node_failure.py.)

The head is a node of its own, started with the S3 endpoint in its environment (`AWS_ENDPOINT_URL`, as a cluster's
nodes get it from their image or runtime env), so the job's driver, the Train workers and the decoding actors reach
the bucket the way they reach S3 on a cluster. Nothing of the runs is on a local disk. The tests run in this order
(the second one stops the job the first one watches); either runs alone as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from reid import storage
from reid.evaluation.run.discovery import read_history
from tests.ops.helpers import (
    SHARED_RUN,
    assert_same_weights,
    final_state,
    job_status,
    local_head,
    ray_job,
    submit_train,
    wait_for_status,
)
from tests.ops.prometheus import (
    GPU_ONLY,
    INSTALL,
    PROMETHEUS,
    STALL_TEST_S,
    alert_rules,
    api,
    dump_board,
    panel_queries,
    running_prometheus,
    wait_until,
)
from tests.ops.storage_server import S3Server, s3_env, s3_server
from tests.ops.test_storage_train import final_state_in

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# the reference job's configuration (two Train workers, three epochs): epoch 1 is checkpointed, the stop lands in
# epoch 2's stall
EPOCHS = 3
RUN, JOB = "cut", "reid-s3-cut"


@dataclass(frozen=True)
class StalledJob:
    s3: S3Server
    head: object  # jobs.local_cluster.LocalHead
    started: float  # submission time (Unix seconds): the start of the panels' window
    prometheus: str | None  # Prometheus's base URL, None when the package is not installed
    rules: Path | None  # the shortened alert rules Prometheus evaluates


def _args(s3: S3Server, name: str, *extra: str) -> list[str]:
    return ["baseline", f"data.root={s3.uri('data', 'tiny')}", f"ray.storage_path={s3.uri('runs')}", f"name={name}",
            *SHARED_RUN, *extra]


@pytest.fixture(scope="module")
def stalled_job(ops_data, submitter, tmp_path_factory):
    """The S3 server with the tiny set uploaded as it is (`s3://.../data/tiny`), a head whose processes all have the
    endpoint in their environment, Prometheus scraping it (when installed), and the job, submitted and left to run
    into its stall; stopped at the end whatever happened."""
    with s3_server() as s3:
        storage.copy_dir(ops_data, s3.uri("data", "tiny"))
        with local_head("reid-s3-", s3_env(s3.endpoint)) as head, contextlib.ExitStack() as stack:
            base = rules = None
            if PROMETHEUS is not None:
                base, rules = stack.enter_context(running_prometheus(
                    head.temp_dir / "prom_metrics_service_discovery.json", tmp_path_factory.mktemp("prometheus")))
            started = time.time()
            out = submit_train(submitter, head.dashboard_url, JOB, _args(s3, RUN, "train.inject_fault=stall@2:1"),
                               wait=False)
            assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
            try:
                yield StalledJob(s3, head, started, base, rules)
            finally:
                ray_job(submitter, head.dashboard_url, "stop", JOB)


@pytest.mark.skipif(PROMETHEUS is None, reason=f"prometheus binary missing: {INSTALL}")
@pytest.mark.timeout(600)
def test_live_run_fills_every_panel_and_a_stall_fires_the_alert(stalled_job, submitter):
    job, base = stalled_job, stalled_job.prometheus
    check = subprocess.run([shutil.which("promtool") or "promtool", "check", "rules", str(job.rules)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    def validated() -> bool:  # epoch 1 trained and validated; epoch 2 hangs before its first step
        status = job_status(submitter, job.head.dashboard_url, JOB)
        assert status in {"PENDING", "RUNNING"}, (status, ray_job(submitter, job.head.dashboard_url, "logs",
                                                                  JOB).stdout[-3000:])
        return bool(api(base, "query", query=f'ray_reid_val_map{{run="{RUN}"}}')["result"])

    wait_until(validated, 300, "validation mAP of epoch 1 in Prometheus", period_s=2.0)
    wait_until(lambda: api(base, "query", query='ALERTS{alertname="ReidTrainingStalled",'
                                                f'alertstate="firing",run="{RUN}"}}')["result"],
               STALL_TEST_S + 60, "ReidTrainingStalled firing")

    # a panel shows a time range: its query must return data somewhere in the run's window, not necessarily at this
    # instant (Ray drops a gauge ~20 s after it was last set; during the stall Ray Data sets none)
    empty = []
    window = {"start": f"{job.started:.3f}", "end": f"{time.time():.3f}", "step": "5"}
    for title, query in panel_queries(RUN):
        if any(name in query for name in GPU_ONLY):
            continue
        if not api(base, "query_range", query=query, **window)["result"]:
            empty.append((title, query))
    names = [n for n in api(base, "label/__name__/values") if n.startswith(("ray_data", "ray_actors"))]
    assert not empty, (empty, names)  # names: what Ray Data exported, for a panel that needs a new query

    for rule in alert_rules():
        api(base, "query", query=rule["expr"])  # evaluates (a query error fails `api`)
        for name in set(re.findall(r"\bray_[a-z_]+\b", rule["expr"])) - {"ray_train_run_name"}:
            # over the run: Ray sets some of its gauges only on change and drops them ~20 s later
            assert api(base, "query", query=f"count(last_over_time({name}[10m]))")["result"], (rule["alert"], name)

    if os.environ.get("REID_BOARD_DATA"):
        dump_board(base, RUN, job.started, Path(os.environ["REID_BOARD_DATA"]))


@pytest.mark.timeout(1500)
def test_a_submitted_job_in_a_bucket_stops_and_resumes_from_its_uri(stalled_job, submitter, reference_job, tmp_path):
    s3, head, env = stalled_job.s3, stalled_job.head, submitter
    assert reference_job.status == "SUCCEEDED", reference_job.logs[-4000:]
    cut = s3.uri("runs", RUN)
    deadline = time.monotonic() + 600
    # epoch 1's checkpoint is registered: Ray Train writes its snapshot after the checkpoint's upload. A stop that
    # lands between the two (the checkpoint_* folder already listed) leaves nothing a resume can find, and the
    # resumed job starts from scratch (seen once in a fresh-clone run)
    snapshot = storage.join(cut, "checkpoint_manager_snapshot.json")
    while not (storage.exists(snapshot) and json.loads(storage.read_text(snapshot))["checkpoint_results"]):
        assert time.monotonic() < deadline, "no registered checkpoint in the bucket within 600 s"
        time.sleep(0.5)
    stopped = ray_job(env, head.dashboard_url, "stop", JOB)
    assert stopped.returncode == 0, stopped.stderr[-1000:]
    assert wait_for_status(env, head.dashboard_url, JOB, {"STOPPED", "SUCCEEDED", "FAILED"}, 120) == "STOPPED"
    assert not storage.exists(storage.join(cut, "summary.json"))  # it did not finish

    resumed = submit_train(env, head.dashboard_url, "reid-s3-resumed", ["--resume", cut, "train.inject_fault=null"],
                           wait=True)
    logs = ray_job(env, head.dashboard_url, "logs", "reid-s3-resumed").stdout
    assert resumed.returncode == 0, logs[-4000:]
    match = re.search(rf"\[reid\] resuming {RUN} at epoch (\d+)/{EPOCHS}", logs)
    assert match and int(match.group(1)) == 2, logs[-4000:]  # from epoch 1's checkpoint, not from scratch
    assert f"[reid] epoch   1/{EPOCHS}" not in logs
    assert all(f"[reid] epoch   {e}/{EPOCHS}" in logs for e in range(2, EPOCHS + 1)), logs[-4000:]
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "manifest-val.parquet"):
        assert storage.is_file(storage.join(cut, name)), storage.list_dir(cut)
    assert [row["epoch"] for row in read_history(cut)] == list(range(1, EPOCHS + 1))  # epoch 1's metrics kept
    assert_same_weights(final_state(reference_job.run_dir)["model"], final_state_in(cut, tmp_path / "b")["model"])
