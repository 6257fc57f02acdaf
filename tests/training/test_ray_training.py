"""Ray Train on CPU: 2 workers, DDP over Gloo, the Ray Data pipeline, checkpoints, resume equivalence."""

from __future__ import annotations

import pytest
import ray
import torch

from reid.evaluation.run.discovery import newest_checkpoint
from reid.ray_runtime import start_local_ray
from reid.training.api import train
from reid.training.checkpoint import load_state

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # minutes: Ray clusters and decoding actors


@pytest.fixture(scope="module")
def ray_cluster():
    start_local_ray(num_cpus=2, object_store_memory=300 * 1024**2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _final_weights(run_dir):
    return load_state(newest_checkpoint(run_dir))["model"]


@pytest.mark.timeout(900)
def test_two_workers_train_report_checkpoint_and_resume_equivalently(ray_cluster, tiny_data, tmp_path, tiny_config):
    # two epochs: the fewest with a checkpoint to resume from and an epoch after it
    common = ["ray.num_workers=2", "ray.cpus_per_worker=0.5", "data.decode_cpus=0.25", "train.epochs=2",
              "train.eval_every=2", "train.keep_checkpoints=5"]
    full = train(tiny_config(tiny_data, tmp_path / "a", *common, "name=full"))
    assert [int(h["epoch"]) for h in full.history] == [1, 2]
    last = full.history[-1]
    for key in ("loss", "train/ce", "train/triplet", "clips_per_s", "data_wait_s", "val/mAP", "val/R1"):
        assert key in last, key
    listing = sorted(p.name for p in full.run_dir.iterdir())
    assert len([n for n in listing if n.startswith("checkpoint_2")]) == 2, listing
    assert (full.run_dir / "config.yaml").is_file() and full.best_checkpoint is not None

    cut = tiny_config(tiny_data, tmp_path / "b", *common, "name=cut", "train.inject_fault=raise@2:1/1")
    with pytest.raises(Exception, match="injected fault"):
        train(cut)
    resumed = train(cut)  # same name and storage: Ray Train V2 resumes from the latest checkpoint (epoch 1)
    assert [int(h["epoch"]) for h in resumed.history][-1] == 2
    # exact by design: each rank's batches are a pure function of (seed, epoch, rank), its random draws too
    a, b = _final_weights(full.run_dir), _final_weights(resumed.run_dir)
    assert sorted(a) == sorted(b)
    for key in a:  # weights and BatchNorm buffers alike
        assert torch.equal(a[key], b[key]), key
