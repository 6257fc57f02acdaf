"""A Ray Train run in this process whose outputs and checkpoints live in an S3 bucket (moto's server on 127.0.0.1,
tests/ops/storage_server.py), reached by every Ray process through AWS_ENDPOINT_URL as on a real cluster. Its loss
turns NaN at the first step of epoch 2 (`train.inject_fault=nan`, ray.max_failures=0): the run stops with the NaN
guard's message and keeps epoch 1's checkpoint, the last good one, as the only one in the bucket, with finite
weights. Resumed with `reid train --resume s3://...`, it finishes, keeps its first epoch's metrics, and writes
nothing to the local disk (the working directory stays empty).

That a run resumed from a bucket ends with the weights of the same run done in one go is checked by the bucket job
test (test_stalled_job.py, against the shared reference job), so this test does not train a third run for it."""

from __future__ import annotations

import argparse

import pytest
import ray
import torch

from reid import storage
from reid.commands.train import add_arguments, config_from_args
from reid.config import build_config
from reid.ray_runtime import start_local_ray
from reid.training.api import train
from reid.training.checkpoint import STATE_FILE, load_state
from tests.ops.helpers import TINY
from tests.ops.storage_server import s3_server

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# one Train worker and two epochs: the smallest run that has a checkpoint to resume from and one epoch after it
RUN = [*TINY, "ray.num_workers=1", "ray.cpus_per_worker=0.5", "data.decode_cpus=0.25", "train.epochs=2",
       "train.eval_every=1", "train.keep_checkpoints=5"]


@pytest.fixture(scope="module")
def s3_ray():
    """The S3 server first, then Ray: the raylet and its workers inherit the endpoint from this process."""
    with s3_server() as s3:
        start_local_ray(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
        try:
            yield s3
        finally:
            ray.shutdown()


def final_state_in(run_uri: str, tmp) -> dict:
    """The state of the run's last checkpoint in the bucket (Ray's checkpoint_<timestamp> names sort by time)."""
    names = [n for n in storage.list_dir(run_uri) if n.startswith("checkpoint_") and not n.endswith(".json")]
    assert names, storage.list_dir(run_uri)
    local = storage.local_dir(storage.join(run_uri, names[-1]), tmp)
    return load_state(local / STATE_FILE)


@pytest.mark.timeout(900)
def test_a_run_in_a_bucket_stopped_by_a_nan_loss_resumes_from_its_uri_and_writes_nothing_locally(
        s3_ray, ops_data, tmp_path, monkeypatch):
    s3 = s3_ray
    cwd = tmp_path / "job-working-dir"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    common = [f"data.root={ops_data}", f"ray.storage_path={s3.uri('runs')}", *RUN]

    with pytest.raises(Exception, match=r"loss term '\w+' is nan at epoch 2 step 1") as failed:
        train(build_config("baseline", [], [*common, "name=cut", "train.inject_fault=nan@2:1/0",
                                            "ray.max_failures=0"]))
    assert "NonFiniteLossError" in str(failed.value) or "Lower the learning rate" in str(failed.value)
    cut = s3.uri("runs", "cut")
    assert storage.is_file(storage.join(cut, "config.yaml"))  # written before the fit, for --resume
    kept = [n for n in storage.list_dir(cut) if n.startswith("checkpoint_") and not n.endswith(".json")]
    assert len(kept) == 1, kept  # epoch 1's; nothing was written for the failed epoch
    state = final_state_in(cut, tmp_path / "a")
    assert state["next_epoch"] == 1
    for key, value in state["model"].items():
        assert torch.isfinite(value.float()).all(), key

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--resume", cut, "train.inject_fault=null"])
    resumed = train(config_from_args(args))

    assert resumed.run_dir == cut and str(resumed.best_checkpoint).startswith(cut + "/checkpoint_")
    assert [r["epoch"] for r in resumed.history] == [1, 2]  # metrics.jsonl in the bucket keeps epoch 1
    assert storage.is_file(storage.join(cut, "summary.json"))
    state = final_state_in(cut, tmp_path / "b")
    assert state["next_epoch"] == 2 and all(torch.isfinite(v.float()).all() for v in state["model"].values())
    assert list(cwd.iterdir()) == []
