"""A Tune sweep in which one trial's process is killed (SIGKILL) mid-run: Tune retries the trial, the retried trial
resumes its training run from its own checkpoint, and the sweep completes. Uses the project's sweep runner
(tune/search.py `run_search`) on the real head node (conftest `head`), with in-process trials."""

from __future__ import annotations

import json

import pytest

from reid.config import build_config
from tests.ops.helpers import TINY
from tune.search import SearchOptions, run_search
from tune.spaces import space_from_mapping

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# with Optuna's seed 0 the two trials draw different values: one trial is killed at epoch 2, the other runs clean
SPACE = {"method": "baseline", "params": {"train.inject_fault": [None, "kill@2:1"]}}


@pytest.mark.timeout(900)
def test_sweep_with_a_crashing_trial_retries_it_and_completes(driver, ops_data, tmp_path, capsys):
    from ray.tune import ExperimentAnalysis

    cfg = build_config("baseline", [], [f"data.root={ops_data}", *TINY, "ray.num_workers=0", "train.epochs=2",
                                        "train.eval_every=1"])
    space = space_from_mapping("faults", SPACE)
    out = run_search(cfg, space, SearchOptions(trials=2, out=tmp_path, name="faulty", seed=0, cpus_per_trial=1.0,
                                               max_failures=2))
    assert len(out.rows) == 2 and out.errors == 0, out.rows
    console = capsys.readouterr().out
    assert console.count(" restarts (retry 1 of 2): the trial's process died (SYSTEM_ERROR: ") == 1, console[-3000:]
    assert all(r["status"] == "TERMINATED" and r["epochs"] == 2 for r in out.rows), out.rows

    trials = {t.trial_id: t for t in ExperimentAnalysis(str(out.sweep_dir)).trials}
    faults = {tid: t.config["train.inject_fault"] for tid, t in trials.items()}
    assert sorted(faults.values(), key=str) == sorted([None, "kill@2:1"], key=str), faults
    for tid, trial in trials.items():
        run_dir = out.sweep_dir / "runs" / f"faulty-{tid}"
        killed = faults[tid] is not None
        assert (run_dir / ".fault-kill@2:1").exists() == killed
        assert trial.num_failures == (1 if killed else 0), (tid, trial.num_failures)
        epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        # the killed trial died at epoch 2 step 1 (epoch 2 never reported) and resumed from epoch 1's checkpoint
        assert epochs == [1, 2], (tid, epochs)
