"""Sweeps on a real (small) Ray cluster: in-process trials, tiny synthetic set, 1 epoch, ResNet-18 at 64x32, T=2."""

from __future__ import annotations

import json
import os
import signal

import pytest

from reid.config import build_config
from reid.errors import ReidError
from tune.search import SearchOptions, run_search
from tune.spaces import space_from_mapping

pytestmark = pytest.mark.ray

TINY = ["data.synth_preset=tiny", "ray.num_workers=0", "train.epochs=1", "model.depth=18", "model.pretrained=false",
        "data.height=64", "data.width=32", "data.seq_len=2", "ray.object_store_memory=314572800"]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from tune.runner import start_local_ray

    start_local_ray(num_cpus=2, object_store_memory=300 * 1024**2, attempts=5)  # dashboard on, as in sweeps
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    from reid.data.synth import ensure_dataset

    root = tmp_path_factory.mktemp("tiny") / "synthetic-tiny"
    ensure_dataset(root, "tiny")
    return build_config("baseline", ["baseline-synthetic"], [*TINY, f"data.root={root}"])


# the margin only: T stays 2 so that the trials are equally cheap
SPACE = {"method": "baseline", "params": {"loss.triplet_margin": "uniform(0.1, 0.8)"}}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_trial_optuna_search_writes_the_best_config(ray_cluster, tiny_cfg, tmp_path):
    space = space_from_mapping("margin", SPACE)
    out = run_search(tiny_cfg, space, SearchOptions(trials=2, out=tmp_path, cpus_per_trial=1.0, seed=0))
    assert len(out.rows) == 2 and out.errors == 0
    assert all(r["epochs"] == 1 and r["checkpoint_score"] >= 0 for r in out.rows)
    best = build_config(None, [str(out.best_config)])  # what `reid train --config` does with it
    assert best.method == "baseline" and best.loss["triplet_margin"] == pytest.approx(
        out.best_overrides["loss.triplet_margin"])
    assert out.rows[0]["checkpoint_score"] == pytest.approx(out.best_score)
    assert out.rows[0]["loss.triplet_margin"] == pytest.approx(best.loss["triplet_margin"])
    for name in ("results.csv", "results.md", "objective.png"):
        assert (out.sweep_dir / name).stat().st_size > 0
    runs = sorted((out.sweep_dir / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("baseline-margin-") for r in runs)


class InterruptAfterFirstTrial:
    """A Tune callback that interrupts the sweep (like Ctrl+C) once one trial has completed."""

    def __new__(cls):
        from ray.tune import Callback

        class _Cb(Callback):
            def on_trial_complete(self, iteration, trials, trial, **info):
                os.kill(os.getpid(), signal.SIGUSR1)  # Tune's handler: save the state and stop

        return _Cb()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_interrupted_sweep_resumes_without_rerunning_completed_trials(ray_cluster, tiny_cfg, tmp_path):
    from ray import tune

    space = space_from_mapping("margin", SPACE)
    opts = SearchOptions(trials=2, out=tmp_path, name="resume-me", max_concurrent=1, cpus_per_trial=1.0)
    first = run_search(tiny_cfg, space, opts, callbacks=[InterruptAfterFirstTrial()])
    assert [r["status"] for r in first.rows].count("TERMINATED") == 1
    sweep = tmp_path / "resume-me"
    assert tune.Tuner.can_restore(str(sweep))
    done_before = {p.parent.name: p.read_text() for p in sweep.glob("*/result.json") if p.read_text().strip()}
    assert len(done_before) == 1  # interrupted after the first of the two trials (one at a time)
    with pytest.raises(ReidError, match="--resume"):
        run_search(tiny_cfg, space, opts)  # the name is taken: refuse to overwrite without --resume
    opts.resume = True
    out = run_search(tiny_cfg, space, opts)
    assert len(out.rows) == 2 and out.errors == 0
    results = {p.parent.name: p.read_text() for p in sweep.glob("*/result.json")}
    assert len(results) == 2
    for trial_dir, text in done_before.items():
        assert results[trial_dir] == text  # finished before the interruption: not run again
    for text in results.values():
        assert len(text.strip().splitlines()) == 1  # one epoch each, reported once
        assert json.loads(text.strip().splitlines()[0])["epoch"] == 1


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 270 s on an idle 2-core machine
def test_trials_that_fit_a_torch_trainer_run_one_after_another(ray_cluster, tiny_cfg, tmp_path):
    """Train V2 inside Tune: every trial fits a TorchTrainer (one worker, Ray Data decoding) and reports through
    TuneReportCallback. Four trials in a row, because the fourth is where the placement groups of finished runs made
    trials hang with the dashboard off (ray 2.60 on a 2-core machine)."""
    from reid.config import validate_overrides

    cfg = validate_overrides(tiny_cfg, {"ray.num_workers": 1, "ray.cpus_per_worker": 0.5, "data.decode_cpus": 0.25})
    out = run_search(cfg, space_from_mapping("margin", SPACE),
                     SearchOptions(trials=4, out=tmp_path, max_concurrent=1, cpus_per_trial=0.1, seed=0))
    assert len(out.rows) == 4 and out.errors == 0
    assert all(r["epochs"] == 1 and r["checkpoint_score"] >= 0 for r in out.rows)
    runs = sorted((out.sweep_dir / "runs").iterdir())
    assert len(runs) == 4 and all(any(r.glob("checkpoint_*")) for r in runs)  # Ray Train checkpoints per trial
