"""A Ray Train run in this process whose outputs and checkpoints live in an S3 bucket (moto's server on 127.0.0.1,
tests/ops/storage_server.py), reached by every Ray process through AWS_ENDPOINT_URL as on a real cluster. Two of the
videos its first batch decodes are unreadable (under `data.max_errored_fraction`: skipped, counted, listed in the
bucket's `unreadable.json`; past it: test_faults.py), and its loss turns NaN at the first step of epoch 2
(`train.inject_fault=nan`, ray.max_failures=0): the run stops with the NaN guard's message and keeps epoch 1's
checkpoint, the last good one, as the only one in the bucket, with finite weights, and it writes nothing to the local
disk (the working directory stays empty).

That a run in a bucket resumes from its URI (`--resume s3://...`, its metrics kept) and ends with the weights of the
same run done in one go is checked by the bucket job test (test_stalled_job.py, against the shared reference job), so
this test does not train a resumed run."""

from __future__ import annotations

import json
import shutil

import pytest
import ray
import torch

from reid import storage
from reid.config import build_config
from reid.ray_runtime import start_local_ray
from reid.training.api import train
from reid.training.checkpoint import STATE_FILE, load_state
from tests.ops.helpers import TINY, damage_first_batch
from tests.ops.storage_server import s3_server

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# one Train worker and two epochs: the smallest run that has a checkpoint and an epoch after it
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
def test_a_run_in_a_bucket_skips_unreadable_videos_stops_at_a_nan_loss_and_writes_nothing_locally(
        s3_ray, ops_data, tmp_path, monkeypatch, capfd):
    s3 = s3_ray
    cwd = tmp_path / "job-working-dir"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    data = tmp_path / "data"
    shutil.copytree(ops_data, data)
    cfg = build_config("baseline", [], [f"data.root={data}", f"ray.storage_path={s3.uri('runs')}", *RUN, "name=cut",
                                        "data.max_errored_fraction=0.5", "train.inject_fault=nan@2:1/0",
                                        "ray.max_failures=0"])
    victims = damage_first_batch(cfg)

    with pytest.raises(Exception, match=r"loss term '\w+' is nan at epoch 2 step 1") as failed:
        train(cfg)
    assert "NonFiniteLossError" in str(failed.value) or "Lower the learning rate" in str(failed.value)
    cut = s3.uri("runs", "cut")
    assert storage.is_file(storage.join(cut, "config.yaml"))  # written before the fit, for --resume
    kept = [n for n in storage.list_dir(cut) if n.startswith("checkpoint_") and not n.endswith(".json")]
    assert len(kept) == 1, kept  # epoch 1's; nothing was written for the failed epoch
    state = final_state_in(cut, tmp_path / "a")
    assert state["next_epoch"] == 1
    for key, value in state["model"].items():
        assert torch.isfinite(value.float()).all(), key
    # the unreadable videos were skipped (epoch 1 trained), counted and listed next to the checkpoints
    assert "[reid] skipped 2 unreadable training tracklet(s) (data.max_errored_fraction=0.5)" in capfd.readouterr().out
    bad = json.loads(storage.read_text(storage.join(cut, "unreadable.json")))
    assert sorted(int(k) for k in bad) == victims, bad
    assert list(cwd.iterdir()) == []
