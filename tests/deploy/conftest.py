"""One tiny trained baseline run shared by the deploy tests (trains in-process in well under a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid.config import build_config

TINY = ["model.depth=18", "model.pretrained=false", "data.height=64", "data.width=32", "data.seq_len=2",
        "data.ids_per_batch=2", "data.tracklets_per_id=2", "data.batches_per_epoch=2", "data.test_sampler=restricted",
        "data.augment.pad=2", "scheduler.warmup_epochs=0", "eval.batch_size=16", "train.epochs=1",
        "ray.num_workers=0"]


@pytest.fixture(scope="session")
def deploy_data(tiny_synth) -> Path:
    return tiny_synth


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, deploy_data) -> Path:
    """Run directory of a 1-epoch baseline (ResNet-18, 64x32 frames) on the tiny synthetic set."""
    from reid.training.api import train

    storage = tmp_path_factory.mktemp("deploy-runs")
    cfg = build_config("baseline", [], [f"data.root={deploy_data}", f"ray.storage_path={storage}", *TINY])
    return train(cfg).run_dir
