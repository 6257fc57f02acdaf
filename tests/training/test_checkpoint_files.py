"""Checkpoint files: written atomically, a copy cut short (a worker killed mid-upload) never picked up, a full disk
named and leaving the checkpoints there were."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from torch import nn

from reid.evaluation.run.discovery import complete_checkpoints, newest_checkpoint
from reid.training.checkpoint import STATE_FILE, is_complete, load_state, save_state
from reid.training.session import LocalSession


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


def _disk_full(obj, f) -> None:
    """torch.save on a full disk: its zip writer turns the file's OSError into a RuntimeError (seen on a full
    tmpfs: "[enforce fail at inline_container.cc:671] . unexpected pos 71821504 vs 71821392")."""
    f.write(b"PK\x03\x04 some bytes")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 704 vs 598") from None


def test_a_full_disk_is_an_oserror_naming_the_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(OSError) as err:
        _save(tmp_path / "ckpt", 3)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "ckpt" / STATE_FILE)
    assert list((tmp_path / "ckpt").iterdir()) == []


def _report(session: LocalSession, epoch: int, write, best: bool = True) -> None:
    session.report({"epoch": epoch, "is_best": best}, write)


def test_best_is_a_hard_link_and_a_failed_write_keeps_the_checkpoints_there_were(tmp_path):
    session = LocalSession(tmp_path / "run", batches=lambda epoch: iter(()), keep=2)
    _report(session, 1, lambda d: _save(d, 2))
    best, first = tmp_path / "run" / "best" / STATE_FILE, tmp_path / "run" / "checkpoints" / "epoch_0001" / STATE_FILE
    assert best.stat().st_nlink == 2 and best.stat().st_ino == first.stat().st_ino  # no second copy on disk

    def full(directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / STATE_FILE).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", str(directory / STATE_FILE))

    with pytest.raises(OSError):
        _report(session, 2, full)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["epoch_0001"]  # no .tmp left
    assert load_state(tmp_path / "run" / "best")["next_epoch"] == 2 and session.checkpoints()[-1].name == "epoch_0001"
