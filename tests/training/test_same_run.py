"""Starting a run again continues it only with the config its checkpoints were trained with (reid.training.same_run);
a data.manifest that names a missing file is an error, never a synthetic set generated in its place."""

from __future__ import annotations

import argparse

import pytest
import yaml

from reid.config import build_config
from reid.data.source import manifest_path
from reid.errors import ReidError
from reid.training.api import train
from reid.training.same_run import check_same_run, flatten, is_execution_key, learned_differences


def _naive_differences(old: dict, new: dict, skip: tuple[str, ...]) -> set[str]:
    """Every dotted leaf key whose value differs, walking both trees by hand."""
    def leaves(tree, prefix=""):
        for k, v in tree.items():
            if isinstance(v, dict) and v:
                yield from leaves(v, prefix + k + ".")
            else:
                yield prefix + k, v
    a, b = dict(leaves(old)), dict(leaves(new))
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and not any(k.startswith(s) for s in skip)}


def test_learned_differences_leave_out_where_and_how_a_run_executes():
    old = {"optim": {"lr": 3e-4, "momentum": 0.9}, "ray": {"num_workers": 2}, "eval": {"batch_size": 32},
           "model": {"depth": 50}, "data": {"decode_workers": 1, "seq_len": 8}, "train": {"inject_fault": None}}
    new = {"optim": {"lr": 0.1, "momentum": 0.9}, "ray": {"num_workers": 4}, "eval": {"batch_size": 8},
           "model": {"depth": 50, "sigma": 0.3}, "data": {"decode_workers": 4, "seq_len": 4},
           "train": {"inject_fault": "raise@2:1"}}
    found = {k for k, _, _ in learned_differences(old, new)}
    assert found == {"optim.lr", "model.sigma", "data.seq_len"}
    assert found == _naive_differences(old, new, ("ray.", "eval.", "data.decode_workers", "train.inject_fault"))
    assert flatten({"a": {"b": {"c": 1}}, "d": [1, 2], "e": {}}) == {"a.b.c": 1, "d": [1, 2], "e": {}}
    assert is_execution_key("ray.address") and not is_execution_key("rayx") and not is_execution_key("data.root")


def test_paths_differ_only_when_they_name_another_place(tmp_path, monkeypatch):
    """Relative paths (runs written before config.yaml held absolute ones) as they resolve here; symbolic links
    followed (Tune experiment records held resolved paths until 2026-12-07); other keys and URIs compared as text."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    old = {"data": {"root": "real", "manifest": "s3://b/m.parquet"}, "ray": {"storage_path": str(tmp_path / "real")},
           "train": {"init_from": str(tmp_path / "real" / "run")}, "model": {"name": "real"}}
    new = {"data": {"root": str(tmp_path / "real"), "manifest": "s3://b/../b/m.parquet"},
           "ray": {"storage_path": "link"}, "train": {"init_from": str(tmp_path / "link" / "run")},
           "model": {"name": str(tmp_path / "real")}}
    assert {k for k, _, _ in learned_differences(old, new)} == {"data.manifest", "model.name"}
    new["data"]["root"] = str(tmp_path / "other")
    assert "data.root" in {k for k, _, _ in learned_differences(old, new)}


def test_a_changed_config_does_not_continue_an_existing_run(tiny_data, tmp_path, tiny_config, capsys):
    cfg = tiny_config(tiny_data, tmp_path, "train.epochs=1", "name=r")
    first = train(cfg, test=False)
    # the same config again continues it (a finished run: nothing more to train); execution keys may change
    again = train(tiny_config(tiny_data, tmp_path, "train.epochs=1", "name=r", "eval.batch_size=8"), test=False)
    assert [h["epoch"] for h in again.history] == [1]
    assert "r has trained all its 1 epochs" in capsys.readouterr().out
    stored = (first.run_dir / "config.yaml").read_text()
    changed = tiny_config(tiny_data, tmp_path, "train.epochs=2", "name=r", "optim.lr=0.1")
    with pytest.raises(ReidError, match=r"another config \(optim\.lr: 0\.00035 -> 0\.1; train\.epochs: 1 -> 2\).*"
                                        r"reid train --resume .*name=NEW"):
        train(changed, test=False)
    # refused before anything was written: the run's config is still the one it was trained with
    assert yaml.safe_load((first.run_dir / "config.yaml").read_text()) == yaml.safe_load(stored)
    assert check_same_run(changed, first.run_dir, allow_changed=True) == [
        ("optim.lr", 0.00035, 0.1), ("train.epochs", 1, 2)]
    # `reid train --resume RUN key=value` continues it with the change, and says so
    resumed = train(changed, test=False, allow_changed=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert "continuing" in capsys.readouterr().out
    # a new name starts a new run beside it
    assert check_same_run(tiny_config(tiny_data, tmp_path, "name=other", "optim.lr=0.1"), tmp_path / "other") == []


def test_a_run_records_absolute_paths_and_one_that_recorded_relative_ones_still_continues(
        tiny_data, tmp_path, tiny_config, monkeypatch, capsys):
    """`reid eval RUN`, `reid export RUN`, ... from another directory read config.yaml's data.root: a relative one
    pointed them elsewhere (for the synthetic set: a new copy generated there, 2026-12-07)."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "tiny").symlink_to(tiny_data)
    monkeypatch.chdir(work)
    first = train(tiny_config("data/tiny", "runs", "train.epochs=1", "name=rel"), test=False)
    stored = yaml.safe_load((first.run_dir / "config.yaml").read_text())
    assert stored["data"]["root"] == str(work / "data" / "tiny") and stored["ray"]["storage_path"] == str(work / "runs")
    # a run written before: relative paths in its config.yaml, started again from where it was started
    stored["data"]["root"], stored["ray"]["storage_path"] = "data/tiny", "runs"
    (first.run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    again = tiny_config("data/tiny", "runs", "train.epochs=1", "name=rel")
    assert check_same_run(again, first.run_dir) == []
    train(again, test=False)
    assert "rel has trained all its 1 epochs" in capsys.readouterr().out
    # from elsewhere the same relative words name another dataset: refused as before
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ReidError, match=r"another config \(data\.root: "):
        check_same_run(tiny_config("data/tiny", work / "runs", "train.epochs=1", "name=rel"), first.run_dir)
    # and `reid train --resume RUN` from there says why, before anything starts (the start above rewrote the file)
    from reid.cli import main

    (first.run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    capsys.readouterr()
    assert main(["train", "--resume", str(first.run_dir)]) == 2
    assert (f"reid train: error: {first.run_dir}'s config.yaml names data.root=data/tiny, relative to the directory "
            f"the run was started in") in capsys.readouterr().err


def test_reid_train_resume_allows_changed_keys_and_a_plain_start_does_not(monkeypatch):
    import reid.training.api as api
    from reid.commands import train as command

    seen = {}
    monkeypatch.setattr(api, "train", lambda cfg, **kw: seen.update(kw) or (_ for _ in ()).throw(SystemExit(0)))
    monkeypatch.setattr(command, "config_from_args", lambda args: build_config("baseline", [], []))
    for resume, expected in ((None, False), ("runs/x", True)):
        args = argparse.Namespace(resume=resume, audit_log=None, verbose=False)
        with pytest.raises(SystemExit):
            command.run(args)
        assert seen["allow_changed"] is expected


def test_a_missing_explicit_manifest_is_an_error_not_a_generated_set(tmp_path):
    cfg = build_config("baseline", [], [f"data.root={tmp_path / 'synth'}",
                                         f"data.manifest={tmp_path / 'nowhere' / 'manifest.parquet'}"])
    with pytest.raises(ReidError, match=r"no manifest at .*nowhere.*data\.manifest"):
        manifest_path(cfg.data)
    assert not (tmp_path / "synth").exists()


def test_a_stopped_reid_train_says_how_to_go_on(tiny_data, tmp_path, tiny_config, monkeypatch, capsys):
    import reid.training.api as api
    from reid.commands import train as command

    cfg = tiny_config(tiny_data, tmp_path, "name=stopped")
    monkeypatch.setattr(command, "config_from_args", lambda args: cfg)

    def stopped(cfg, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "train", stopped)
    args = argparse.Namespace(resume=None, audit_log=None, verbose=False)
    with pytest.raises(KeyboardInterrupt):
        command.run(args)
    assert "stopped has no checkpoint yet: the same command starts it again" in capsys.readouterr().err
    (tmp_path / "stopped" / "checkpoints" / "epoch_0001").mkdir(parents=True)  # begun, never written
    with pytest.raises(KeyboardInterrupt):
        command.run(args)
    assert "stopped has no checkpoint yet" in capsys.readouterr().err
    (tmp_path / "stopped" / "checkpoints" / "epoch_0001" / "state.pt").write_bytes(b"")
    with pytest.raises(KeyboardInterrupt):
        command.run(args)
    run_dir = tmp_path.resolve() / "stopped"
    assert f"keeps its checkpoints: continue it with `reid train --resume {run_dir}`" in capsys.readouterr().err


def test_a_run_stopped_before_its_first_checkpoint_starts_again_with_a_corrected_config(
        tiny_data, tmp_path, tiny_config, monkeypatch):
    """A batch refused before the first step (reid.training.step_memory) leaves config.yaml and an empty
    checkpoints/ folder: the same name with the corrected key starts afresh, not 'holds a run trained with another
    config'."""
    from reid.training import step_memory

    monkeypatch.setattr(step_memory, "available_bytes", lambda: 1_000_000)
    refused = tiny_config(tiny_data, tmp_path, "train.epochs=1", "name=t", "data.seq_len=3")
    with pytest.raises(ReidError, match="one training step of this batch"):
        train(refused, test=False)
    run_dir = tmp_path / "t"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints").is_dir()
    monkeypatch.undo()
    fixed = tiny_config(tiny_data, tmp_path, "train.epochs=1", "name=t", "data.seq_len=2")
    assert check_same_run(fixed, run_dir) == []
    assert [h["epoch"] for h in train(fixed, test=False).history] == [1]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["seq_len"] == 2
    with pytest.raises(ReidError, match=r"another config \(data\.seq_len: 2 -> 3\)"):  # now it has one
        check_same_run(refused, run_dir)
