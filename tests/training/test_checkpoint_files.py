"""Checkpoint files: written atomically, and a copy cut short (a worker killed mid-upload) is never picked up."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from reid.evaluation.run.discovery import complete_checkpoints, newest_checkpoint
from reid.training.checkpoint import STATE_FILE, is_complete, load_state, save_state


def _save(directory: Path, next_epoch: int) -> Path:
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    return save_state(directory, model=model, objective=nn.Identity(), optimizers={"main": opt}, scheduler=sched,
                      scaler=None, next_epoch=next_epoch, best_map=0.0, config_yaml="seed: 0\n")


def test_save_leaves_only_the_whole_state_file(tmp_path):
    path = _save(tmp_path / "ckpt", 4)
    assert sorted(p.name for p in path.parent.iterdir()) == [STATE_FILE]
    assert is_complete(path.parent) and is_complete(path)
    assert load_state(path.parent)["next_epoch"] == 4


def test_a_checkpoint_cut_short_is_skipped_by_run_directory_readers(tmp_path):
    run = tmp_path / "run"
    _save(run / "checkpoint_2026-12-02_07-00-01.000000", 1)
    whole = _save(run / "checkpoint_2026-12-02_07-00-02.000000", 2)
    cut = run / "checkpoint_2026-12-02_07-00-03.000000"
    cut.mkdir()
    data = whole.read_bytes()
    (cut / STATE_FILE).write_bytes(data[: len(data) // 2])  # what a killed copy into storage leaves
    (run / "checkpoint_2026-12-02_07-00-04.000000").mkdir()  # a copy killed before its first byte
    assert not is_complete(cut)
    assert [p.name[-9:-7] for p in complete_checkpoints(run)] == ["01", "02"]
    assert newest_checkpoint(run) == whole.parent
    assert load_state(newest_checkpoint(run))["next_epoch"] == 2
