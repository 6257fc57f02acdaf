"""Shared fixtures: one tiny synthetic dataset per test session, and small configs that train in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid.config import build_config

TINY = ["model.depth=18", "model.pretrained=false", "data.height=64", "data.width=32", "data.seq_len=2",
        "data.ids_per_batch=2", "data.tracklets_per_id=2", "data.batches_per_epoch=2", "data.test_sampler=restricted",
        "data.augment.pad=2", "scheduler.warmup_epochs=0", "eval.batch_size=16"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from reid.data.synth import ensure_dataset

    root = tmp_path_factory.mktemp("synth") / "tiny"
    ensure_dataset(root, "tiny")
    return root


def make_tiny_config(data: Path, storage: Path, *extra: str, method: str = "baseline"):
    return build_config(method, [], [f"data.root={data}", f"ray.storage_path={storage}", "ray.num_workers=0",
                                     *TINY, *extra])


@pytest.fixture(scope="session")
def tiny_config():
    """tiny_config(data_dir, storage_dir, *overrides) -> a resolved config that trains in seconds."""
    return make_tiny_config
