"""`reid train` / `reid tune search` with a GPU-sized recipe on a machine without a GPU say which recipe fits
(reid/commands/common.py, `gpu_recipe_on_cpu`)."""

from __future__ import annotations

import pytest

from reid.commands.common import gpu_recipe_on_cpu
from reid.config import build_config


@pytest.fixture
def no_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.mark.timeout(60)
def test_a_gpu_recipe_on_cpu_names_the_cpu_recipes(no_gpu):
    note = gpu_recipe_on_cpu(build_config("baseline", [], ["train.epochs=1"]))
    assert note == ("[reid] note: baseline's recipe here is sized for a GPU (ResNet-50, 256x128 clips of T=8, 1 epoch) "
                    "and this machine has none: on CPUs, `--config baseline-synthetic` (the demo's scale) or "
                    "`--config baseline-synth-cpu`; on a GPU node, ray.use_gpu=true")
    assert "120 epochs" in gpu_recipe_on_cpu(build_config("baseline", [], []))
    assert "(ResNet-18, 256x128 clips of T=8" in gpu_recipe_on_cpu(build_config("adfta", [], []))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method,configs,overrides", [
    ("baseline", ["baseline-synthetic"], []),  # CPU-sized already
    ("baseline", [], ["data.height=128", "data.width=64"]),
    ("baseline", [], ["ray.use_gpu=true"]),  # GPUs asked for: a cluster's workers have them
    ("baseline", [], ["ray.address=10.0.0.1:6379"]),
    ("fcnta", [], []),  # the paper's 56x40 RCN
])
def test_no_note_where_the_recipe_fits_or_the_work_goes_elsewhere(method, configs, overrides, no_gpu):
    assert gpu_recipe_on_cpu(build_config(method, configs, overrides)) is None


@pytest.mark.timeout(60)
def test_no_note_with_a_gpu_or_on_a_cluster(monkeypatch):
    import torch

    cfg = build_config("baseline", [], [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gpu_recipe_on_cpu(cfg) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # a `ray job submit` driver
    assert gpu_recipe_on_cpu(cfg) is None
