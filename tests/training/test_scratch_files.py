"""What runs leave in the temporary folder. A Ray Train worker resumes from a copy of its checkpoint that is gone
once the state is loaded (reid/training/ray_session.py, `RaySession.resume_state`): Ray ends worker processes
without running their finalizers, so a copy kept for the worker's lifetime stayed behind, one per resumed worker.
A run stored under a URI has its config.yaml copied to one place per run (`discovery.local_config`), not to a new
folder per `reid eval` / `reid train --resume`."""

from __future__ import annotations

import tempfile

import pytest
import torch

from reid.training.checkpoint import STATE_FILE


@pytest.mark.timeout(60)
def test_the_checkpoint_copy_is_removed_once_loaded(tmp_path, monkeypatch):
    import ray.train

    from reid.training.ray_session import RaySession

    ckpt = tmp_path / "storage" / "checkpoint_000002"
    ckpt.mkdir(parents=True)
    torch.save({"next_epoch": 3, "best_map": 41.5, "model": {"w": torch.ones(2)}}, ckpt / STATE_FILE)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    session = object.__new__(RaySession)  # no Ray Train context: only the checkpoint it would hand the worker
    session._checkpoint = ray.train.Checkpoint.from_directory(str(ckpt))
    state, source = session.resume_state()
    assert state["next_epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    assert source == str(ckpt)  # the console names the checkpoint, not a temporary copy
    assert list(scratch.iterdir()) == []
    session._checkpoint = None
    assert session.resume_state() is None


@pytest.mark.timeout(60)
def test_a_uri_runs_config_is_copied_to_one_place(tmp_path, monkeypatch):
    from reid.evaluation.run.discovery import local_config
    from reid.training.api import resume_source

    run = tmp_path / "bucket" / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("method: baseline\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    uri = f"file://{run}"
    first = local_config(uri)
    assert first.read_text() == "method: baseline\n" and first.name == "config.yaml"
    (run / "config.yaml").write_text("method: adfta\n")  # the run changed in the bucket: the copy follows
    assert local_config(uri + "/") == first and first.read_text() == "method: adfta\n"
    config, overrides = resume_source(uri)
    assert config == str(first) and overrides == ["name=r1", f"ray.storage_path=file://{run.parent}"]
    assert [p for p in scratch.rglob("*") if p.is_file()] == [first]
    assert local_config(run) == run / "config.yaml"  # a local run is read in place
