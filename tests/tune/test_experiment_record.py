"""`--resume` continues a Tune experiment only with the settings it started with (tune/experiment_record.py): the
commands run up to Ray's start-up, which the tests replace with a stop, over an experiment directory that Tune's
`tuner.pkl` marks as restorable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reid.cli import main
from reid.errors import ReidError
from tune import runner
from tune.experiment_record import RECORD, check_record, experiment_record, record_differences, write_record

STOP = "stopped where Ray would start"


@pytest.fixture
def before_ray(tmp_path, monkeypatch):
    """Commands stop at Ray's start-up (tune.runner.init_ray) with STOP; no synthetic set is generated."""
    import reid.training.api
    import tune.search

    def stop(*args, **kwargs):
        raise ReidError(STOP)

    monkeypatch.setattr(runner, "init_ray", stop)
    monkeypatch.setattr(tune.search, "init_ray", stop)
    monkeypatch.setattr(reid.training.api, "manifest_path_for", lambda cfg: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def started(argv: list[str], capsys) -> None:
    """Start the experiment of `argv` (up to Ray), then mark it as Tune does once it has begun."""
    assert main(argv) == 2
    assert STOP in capsys.readouterr().err
    out = argv[argv.index("--out") + 1]
    exp = next(p for p in Path(out).iterdir() if p.is_dir())
    assert (exp / RECORD).is_file()
    (exp / "tuner.pkl").write_bytes(b"")


@pytest.mark.timeout(120)
def test_a_sweep_resumes_only_with_its_config_space_and_seed(before_ray, capsys):
    sweep = ["tune", "search", "baseline", "--space", "baseline", "--trials", "2", "--out", str(before_ray / "t")]
    started([*sweep, "train.epochs=4"], capsys)
    for extra, named in ((["train.epochs=2"], "train.epochs: 4 -> 2"),
                         (["train.epochs=4", "--seed", "1"], "--seed: 0 -> 1"),
                         (["train.epochs=4", "optim.lr=0.1"], "optim.lr: 0.00035 -> 0.1")):
        assert main([*sweep, "--resume", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert f"the experiment at {before_ray / 't' / 'baseline-baseline'} was started with other settings (" in err
        assert named in err and "--resume continues an experiment as it started" in err, (extra, err)
        assert STOP not in err and len(err.strip().splitlines()) == 1
    # where and how trials execute may change between attempts: the resume goes on to start Ray
    for extra in ([], ["eval.batch_size=16", "ray.cpus_per_worker=0.25", "train.checkpoint_every=2"]):
        assert main([*sweep, "--resume", "train.epochs=4", *extra]) == 2
        assert STOP in capsys.readouterr().err, extra


@pytest.mark.timeout(120)
def test_an_ablation_resumes_only_with_its_rows_seeds_and_epochs(before_ray, capsys):
    table = ["tune", "ablation", "astpn-fig5", "--out", str(before_ray / "a")]
    started([*table, "--seeds", "2"], capsys)
    for extra, named in ((["--seeds", "3"], "seeds: [0, 1] -> [0, 1, 2]"),
                         (["--seeds", "2", "--epochs", "9"], "--epochs: (unset) -> 9"),
                         (["--seeds", "2", "--rows", "0"], "rows: ["),
                         (["--seeds", "2", "model.hidden=64"], "model.hidden: ")):
        assert main([*table, "--resume", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert "was started with other settings" in err and named in err and STOP not in err, (extra, err)
    assert main([*table, "--resume", "--seeds", "2"]) == 2
    assert STOP in capsys.readouterr().err


def test_a_record_without_tune_state_is_a_start_that_never_ran(tmp_path):
    """A start stopped before Tune wrote its state leaves the record alone: a new start may take the directory (and
    writes its own record); --resume finds nothing to continue."""
    exp = tmp_path / "exp"
    first = experiment_record("search", {"optim": {"lr": 0.1}}, {"--seed": 0})
    runner.open_experiment(exp, resume=False, record=first)
    assert runner.experiment_state(exp) == "new"
    with pytest.raises(ReidError, match="--resume: no Tune experiment to continue at"):
        runner.open_experiment(exp, resume=True, record=first)
    second = experiment_record("search", {"optim": {"lr": 0.2}}, {"--seed": 0})
    runner.open_experiment(exp, resume=False, record=second)
    assert json.loads((exp / RECORD).read_text())["config"] == {"optim": {"lr": 0.2}}
    (exp / "tuner.pkl").write_bytes(b"")
    with pytest.raises(ReidError, match="already holds an experiment; pass --resume"):
        runner.open_experiment(exp, resume=False, record=second)
    with pytest.raises(ReidError, match=r"optim\.lr: 0\.2 -> 0\.1"):
        runner.open_experiment(exp, resume=True, record=first)
    runner.open_experiment(exp, resume=True, record=second)


def test_differences_name_settings_then_learned_keys_not_execution_keys(tmp_path):
    stored = experiment_record("ablation", {"ray": {"num_workers": 2}, "eval": {"batch_size": 8},
                                            "train": {"epochs": 4, "lr_steps": [2, 3]}, "name": "a"},
                               {"seeds": [0, 1], "--size": "smoke"})
    new = experiment_record("ablation", {"ray": {"num_workers": 0}, "eval": {"batch_size": 64},
                                         "train": {"epochs": 4, "lr_steps": [3]}, "name": "b"},
                            {"seeds": [0, 1], "--size": "full"})
    assert record_differences(stored, new) == [("--size", "smoke", "full"), ("train.lr_steps", [2, 3], [3])]
    assert record_differences(stored, stored) == []
    assert record_differences(stored, {**stored, "kind": "search"})[0] == ("kind", "ablation", "search")


def test_an_experiment_without_a_readable_record_is_continued_unchecked(tmp_path, capsys):
    """Experiments started before records (or whose record is damaged) resume as before, with a note."""
    record = experiment_record("search", {"optim": {"lr": 0.1}}, {})
    check_record(tmp_path, record)  # none
    (tmp_path / RECORD).write_text("{not json")
    check_record(tmp_path, record)
    notes = capsys.readouterr().out.splitlines()
    assert notes == [f"[reid] note: the experiment at {tmp_path} has no readable {RECORD} (started by an earlier "
                     f"reid?): its settings are not compared with this command's"] * 2
    write_record(tmp_path, experiment_record("search", {"optim": {"lr": 0.2}}, {}))
    with pytest.raises(ReidError, match="was started with other settings"):
        check_record(tmp_path, record)
