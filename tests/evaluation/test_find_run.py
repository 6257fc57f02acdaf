"""`reid eval` / `reid report` given a folder of runs instead of one run name a few of them."""

from __future__ import annotations

import os

import pytest

from reid.errors import ReidError
from reid.evaluation.run.discovery import RUNS_SHOWN, find_run, runs_below


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
