"""The bucket test of issue 18, and the job stop / resume test: a `ray job submit` (through `jobs.submit`) of a
2-worker training whose data (the manifest and the frames), checkpoints and outputs all live in an S3 bucket (moto's
server on 127.0.0.1), stopped mid-run with `ray job stop` and resubmitted with `--resume s3://...`, ends with the same
weights as the same run done in one go: the ops tests' reference job (conftest `reference_job`), which ran the same
configuration from a local folder into local storage, so the comparison also shows that where the data and the runs
live changes nothing. (Resuming from a local folder: tests/training/test_ray_training.py and the killed-worker test.)

The head is a node of its own, started with the S3 endpoint in its environment (`AWS_ENDPOINT_URL`, as a cluster's
nodes get it from their image or runtime env), so the job's driver, the Train workers and the decoding actors reach
the bucket the way they reach S3 on a cluster. Nothing of the runs is on a local disk.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from reid import storage
from tests.ops.helpers import (
    SHARED_RUN,
    assert_same_weights,
    final_state,
    local_head,
    ray_job,
    submit_train,
    wait_for_status,
)
from tests.ops.storage_server import s3_env, s3_server
from tests.ops.test_storage_train import final_state_in

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# the reference job's configuration (two Train workers, three epochs): epoch 1 is checkpointed, the stop lands in
# epoch 2
RUN = SHARED_RUN
EPOCHS = 3


@pytest.fixture(scope="module")
def s3_head(ops_data):
    """The S3 server with the tiny set uploaded as it is (`s3://.../data/tiny`), then a head whose processes all
    have the endpoint in their environment."""
    with s3_server() as s3:
        storage.copy_dir(ops_data, s3.uri("data", "tiny"))
        with local_head("reid-s3-", s3_env(s3.endpoint)) as node:
            yield s3, node


def _args(s3, name: str, *extra: str) -> list[str]:
    return ["baseline", f"data.root={s3.uri('data', 'tiny')}", f"ray.storage_path={s3.uri('runs')}", f"name={name}",
            *RUN, *extra]


@pytest.mark.timeout(1500)
def test_a_submitted_job_in_a_bucket_stops_and_resumes_from_its_uri(s3_head, submitter, reference_job, tmp_path):
    s3, head = s3_head
    env = submitter
    assert reference_job.status == "SUCCEEDED", reference_job.logs[-4000:]
    cut = s3.uri("runs", "cut")
    # epoch 2 stalls before its first step, so the stop lands mid-run however fast the epochs are
    out = submit_train(env, head.dashboard_url, "reid-s3-cut", _args(s3, "cut", "train.inject_fault=stall@2:1"),
                       wait=False)
    assert out.returncode == 0, out.stderr[-2000:]
    deadline = time.monotonic() + 600
    # epoch 1's checkpoint is registered: Ray Train writes its snapshot after the checkpoint's upload. A stop that
    # lands between the two (the checkpoint_* folder already listed) leaves nothing a resume can find, and the
    # resumed job starts from scratch (seen once in a fresh-clone run)
    snapshot = storage.join(cut, "checkpoint_manager_snapshot.json")
    while not (storage.exists(snapshot) and json.loads(storage.read_text(snapshot))["checkpoint_results"]):
        assert time.monotonic() < deadline, "no registered checkpoint in the bucket within 600 s"
        time.sleep(0.5)
    stopped = ray_job(env, head.dashboard_url, "stop", "reid-s3-cut")
    assert stopped.returncode == 0, stopped.stderr[-1000:]
    assert wait_for_status(env, head.dashboard_url, "reid-s3-cut", {"STOPPED", "SUCCEEDED", "FAILED"}, 120) \
        == "STOPPED"
    assert not storage.exists(storage.join(cut, "summary.json"))  # it did not finish

    resumed = submit_train(env, head.dashboard_url, "reid-s3-resumed", ["--resume", cut, "train.inject_fault=null"],
                           wait=True)
    logs = ray_job(env, head.dashboard_url, "logs", "reid-s3-resumed").stdout
    assert resumed.returncode == 0, logs[-4000:]
    match = re.search(rf"\[reid\] resuming cut at epoch (\d+)/{EPOCHS}", logs)
    assert match and int(match.group(1)) == 2, logs[-4000:]  # from epoch 1's checkpoint, not from scratch
    assert f"[reid] epoch   1/{EPOCHS}" not in logs
    assert all(f"[reid] epoch   {e}/{EPOCHS}" in logs for e in range(2, EPOCHS + 1)), logs[-4000:]
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "manifest-val.parquet"):
        assert storage.is_file(storage.join(cut, name)), storage.list_dir(cut)
    assert_same_weights(final_state(reference_job.run_dir)["model"], final_state_in(cut, tmp_path / "b")["model"])
