"""Ray Train's checkpoint index cut short by a full disk: set aside, the run resumes from its newest whole
checkpoint (reid/training/snapshot.py). The whole flow ran once by hand on a 200 MB tmpfs (docs/operations.md)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from reid import storage
from reid.errors import ReidError
from reid.training.checkpoint import save_state
from reid.training.snapshot import SNAPSHOT, repair


def _checkpoint(directory, cut: bool = False):
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_state(directory, model=model, objective=nn.Identity(), optimizers={"main": opt},
                      scheduler=torch.optim.lr_scheduler.StepLR(opt, 1), scaler=None, next_epoch=2, best_map=0.0,
                      config_yaml="seed: 0\n")
    if cut:  # what a full disk left of the next checkpoint
        path.write_bytes(path.read_bytes()[:100])


def test_an_index_cut_short_is_set_aside_and_the_newest_whole_checkpoint_named(tmp_path, capsys):
    run = tmp_path / "run"
    _checkpoint(run / "checkpoint_2026-12-07_04-55-27.361036")
    _checkpoint(run / "checkpoint_2026-12-07_04-55-29.015832", cut=True)
    (run / SNAPSHOT).write_text("")  # Ray Train's rewrite on the full disk
    assert repair(str(run)) == str(run / "checkpoint_2026-12-07_04-55-27.361036")
    assert not (run / SNAPSHOT).exists() and len(list(run.glob(f"{SNAPSHOT}.broken-*"))) == 1
    out = capsys.readouterr().out
    assert out.startswith("[reid] Ray Train's checkpoint index of this run was cut short (a full disk?): set aside as "
                          f"{SNAPSHOT}.broken-") and out.rstrip().endswith("checkpoint_2026-12-07_04-55-27.361036")
    assert repair(str(run)) is None  # nothing to repair any more


def test_a_whole_or_missing_index_is_left_alone(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert repair(str(run)) is None
    (run / SNAPSHOT).write_text(json.dumps({"checkpoint_results": []}))
    assert repair(str(run)) is None and (run / SNAPSHOT).exists()
    assert capsys.readouterr().out == ""


def test_no_whole_checkpoint_left_starts_from_scratch(tmp_path, capsys):
    run = tmp_path / "run"
    _checkpoint(run / "checkpoint_2026-12-07_04-55-29.015832", cut=True)
    (run / SNAPSHOT).write_text('{"checkpoint_res')
    assert repair(str(run)) is None
    assert "no whole checkpoint is left: the run starts from scratch" in capsys.readouterr().out


def test_a_run_in_a_bucket_says_what_to_do(monkeypatch):
    monkeypatch.setattr(storage, "is_file", lambda path: True)
    monkeypatch.setattr(storage, "read_text", lambda path: "")
    with pytest.raises(ReidError, match=r"^Ray Train's checkpoint index s3://bucket/runs/r/checkpoint_manager_snapshot"
                                        r"\.json is cut short .* train\.init_from="):
        repair("s3://bucket/runs/r")
