"""`reid eval` / `reid report` given a folder of runs instead of one run name a few of them; a run's config."""

from __future__ import annotations

import os

import pytest

from reid.config import build_config, save_config
from reid.errors import ReidError
from reid.evaluation.run.discovery import RUNS_SHOWN, find_run, run_config, runs_below


def test_a_folder_of_runs_names_them_newest_first(tmp_path):
    runs = tmp_path / "runs"
    for i in range(RUNS_SHOWN + 2):
        run = runs / f"run{i}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text("method: baseline\n")
        os.utime(run / "config.yaml", (1000 + i, 1000 + i))
    (runs / "not-a-run").mkdir()
    assert [r.name for r in runs_below(runs)] == [f"run{i}" for i in reversed(range(RUNS_SHOWN + 2))]
    with pytest.raises(ReidError) as exc:
        find_run(runs)
    shown = ", ".join(str(runs / f"run{i}") for i in reversed(range(2, RUNS_SHOWN + 2)))
    assert str(exc.value) == f"{runs} is not a run directory but holds {RUNS_SHOWN + 2} run(s); name one: {shown}, ..."
    assert find_run(runs / "run3") == (runs / "run3", None)


def test_a_folder_without_runs_says_so(tmp_path):
    with pytest.raises(ReidError, match="is not a run directory \\(no config.yaml in it or its parents\\)"):
        find_run(tmp_path)
    assert runs_below(tmp_path / "missing") == []


def test_a_run_that_names_its_dataset_relatively_is_read_only_where_that_path_exists(tmp_path, monkeypatch):
    """Runs written before config.yaml recorded absolute paths: `data.root=data/demo` from another directory named
    nothing, or a place where the synthetic set was generated anew (2026-12-07)."""
    start = tmp_path / "project"
    (start / "data" / "demo").mkdir(parents=True)
    (start / "data" / "demo" / "manifest.parquet").write_bytes(b"")  # only its existence is read here
    run = start / "runs" / "old"
    save_config(build_config("baseline", [], ["data.root=data/demo"]), run / "config.yaml")
    monkeypatch.chdir(start)
    assert run_config(run).data.root == "data/demo"  # where the run was started: as before
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ReidError, match=r"old's config.yaml names data.root=data/demo, relative to the directory the "
                                        r"run was started in, and there is no .*/data/demo/manifest.parquet here"):
        run_config(run)
    with pytest.raises(ReidError, match=r"here: run this from that directory or set data.root in .*old/config.yaml to "
                                        r"its absolute path$"):  # `reid export`, `reid index`: no key=value arguments
        run_config(run, overridable=False)
    elsewhere = run_config(run, overrides=[f"data.root={start / 'data' / 'demo'}"])  # the command names it
    assert elsewhere.data.root == str(start / "data" / "demo")
    # a run written since: its config.yaml holds the absolute path, read as it is from anywhere
    new = start / "runs" / "new"
    save_config(build_config("baseline", [], [f"data.root={start / 'data' / 'demo'}"]), new / "config.yaml")
    assert run_config(new).data.root == str(start / "data" / "demo")


def _run_with_checkpoints(run, names):
    import json

    import torch

    for name in names:
        (run / name).mkdir(parents=True)
        torch.save({"model": {}}, run / name / "state.pt")
    (run / "summary.json").write_text(json.dumps({"best_checkpoint": str(run / "best")}))
    return run


def test_a_moved_or_copied_run_reads_its_own_best_checkpoint(tmp_path, caplog):
    """summary.json records the best checkpoint's absolute path where the run was written: a moved run read its
    newest epoch instead, a copied one the original's best."""
    import shutil

    from reid.evaluation.run.discovery import latest_checkpoint

    original = _run_with_checkpoints(tmp_path / "a" / "run", ["best", "checkpoints/epoch_0001", "checkpoints/epoch_0002"])
    assert latest_checkpoint(original) == original / "best"
    copied = tmp_path / "copy" / "run"
    shutil.copytree(original, copied)
    assert latest_checkpoint(copied) == copied / "best"
    moved = tmp_path / "moved" / "run"
    shutil.move(original, moved)
    assert latest_checkpoint(moved) == moved / "best"  # not checkpoints/epoch_0002
    shutil.move(moved, original)
    shutil.rmtree(copied / "best")  # a copy without its best checkpoint: the original's, said in a line
    with caplog.at_level("WARNING"):
        assert latest_checkpoint(copied) == original / "best"
    assert "best checkpoint is read from" in caplog.text and "a moved or copied run" in caplog.text
