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
    assert not (run / "checkpoint_2026-12-07_04-55-29.015832").exists()  # the cut copy: nothing resumes from it
    out = capsys.readouterr().out
    assert out.startswith("[reid] removed 1 checkpoint folder(s) cut short: checkpoint_2026-12-07_04-55-29.015832\n")
    out = out.split("\n", 1)[1]
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


def _index(*names: str) -> str:
    """Ray Train 2.60's index naming `names` (the last also as the latest), as in a real run's file."""
    results = [{"version": 0, "checkpoint_dir_name": n, "metrics": {"epoch": i + 1}} for i, n in enumerate(names)]
    return json.dumps({"ray_version": "2.60.0", "checkpoint_results": results,
                       "latest_checkpoint_result": results[-1] if results else None, "current_report_index": 3})


def test_checkpoint_folders_the_index_does_not_name_are_removed_at_the_next_start(tmp_path, capsys):
    """A run stopped between a worker's checkpoint and the controller's registration of it (Ctrl-C at epoch 4:
    index at epoch 3, folders of epochs 4 and 5 on disk): the resumed run trains those epochs again into new
    folders, and nothing else would ever delete the old ones."""
    run = tmp_path / "run"
    kept = ["checkpoint_2026-12-07_06-10-45.850877", "checkpoint_2026-12-07_06-10-50.408042"]
    stale = ["checkpoint_2026-12-07_06-10-51.721860", "checkpoint_2026-12-07_06-10-53.010514"]
    for name in kept + stale:
        _checkpoint(run / name)
    (run / SNAPSHOT).write_text(_index(*kept))
    (run / "best").mkdir()
    (run / "metrics.jsonl").write_text("{}\n")
    assert repair(str(run)) is None
    assert sorted(p.name for p in run.iterdir()) == sorted([*kept, SNAPSHOT, "best", "metrics.jsonl"])
    out = capsys.readouterr().out
    assert out.startswith("[reid] removed 2 checkpoint folder(s) that Ray Train never registered") and all(
        n in out for n in stale)
    assert repair(str(run)) is None and capsys.readouterr().out == ""  # nothing left to remove


def test_an_index_of_another_layout_removes_nothing(tmp_path):
    run = tmp_path / "run"
    _checkpoint(run / "checkpoint_2026-12-07_06-10-45.850877")
    for text in ('{"ray_version": "9.0", "results": []}', "[]"):
        (run / SNAPSHOT).write_text(text)
        assert repair(str(run)) is None
        assert (run / "checkpoint_2026-12-07_06-10-45.850877" / "state.pt").is_file()


def test_unregistered_folders_are_removed_in_a_bucket_too(tmp_path):
    """reid.storage's listing and removal: the same on a local path and a URI (here file://)."""
    run = tmp_path / "run"
    _checkpoint(run / "checkpoint_a")
    _checkpoint(run / "checkpoint_b")
    (run / SNAPSHOT).write_text(_index("checkpoint_a"))
    assert repair(f"file://{run}") is None
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint_a", SNAPSHOT]


def test_tidy_after_a_fit_removes_what_the_index_does_not_name_and_leaves_a_broken_one_alone(tmp_path, capsys):
    from reid.training.snapshot import tidy

    run = tmp_path / "run"
    _checkpoint(run / "checkpoint_a")
    _checkpoint(run / "checkpoint_b")  # a worker group restarted within the fit rolled this epoch back
    assert tidy(str(run)) == []  # no index (an in-process run): nothing to go by
    (run / SNAPSHOT).write_text('{"checkpoint_res')
    assert tidy(str(run)) == [] and (run / SNAPSHOT).exists()  # unreadable: left for the next start's repair
    (run / SNAPSHOT).write_text(_index("checkpoint_a"))
    assert tidy(str(run)) == ["checkpoint_b"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint_a", SNAPSHOT]
    assert "never registered" in capsys.readouterr().out
