"""Sweeps on a real (small) Ray cluster: in-process trials, tiny synthetic set, 1 epoch, ResNet-18 at 64x32, T=2.

The sweeps of the first two tests live in an S3 bucket (moto's server on 127.0.0.1, tests/ops/storage_server.py),
`--out s3://...` as on a cluster without a shared file system: the Tune experiment, the trials' runs and the sweep's
outputs are read back through reid.storage, and the interrupted sweep is resumed from the bucket."""

from __future__ import annotations

import json
import os
import signal

import pytest

from reid import storage
from reid.config import build_config
from reid.errors import ReidError
from tests.ops.storage_server import s3_server
from tune.search import SearchOptions, run_search
from tune.spaces import space_from_mapping

pytestmark = pytest.mark.ray

TINY = ["data.synth_preset=tiny", "ray.num_workers=0", "train.epochs=1", "model.depth=18", "model.pretrained=false",
        "data.height=64", "data.width=32", "data.seq_len=2", "ray.object_store_memory=314572800"]


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def ray_cluster(s3):
    """Started after the S3 server: Ray's workers inherit its endpoint (AWS_ENDPOINT_URL) from this process."""
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
@pytest.mark.timeout(300)
def test_two_trial_optuna_search_writes_the_best_config(ray_cluster, s3, tiny_cfg, tmp_path, monkeypatch, capsys):
    """A sweep into a bucket: in-process trials train in scratch directories and land their runs there; a run's
    test split evaluated at the end (what ablation rows report) is written beside it. The console holds the
    `[reid] trial` lines, none of Tune's boxes."""
    import json

    from ray import tune

    from reid.evaluation.run.discovery import local_config
    from reid.training.api import TrainResult, _test_at_end

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    space = space_from_mapping("margin", SPACE)
    out = run_search(tiny_cfg, space, SearchOptions(trials=2, out=s3.uri("tune"), cpus_per_trial=1.0, seed=0))
    assert out.sweep_dir == s3.uri("tune", "baseline-margin") and tune.Tuner.can_restore(out.sweep_dir)
    console = capsys.readouterr().out
    assert console.count("[reid] trial ") >= 4 and "queries)" in console  # started and done, twice
    assert "Configuration for experiment" not in console and "TensorBoard" not in console
    assert len(out.rows) == 2 and out.errors == 0
    assert all(r["epochs"] == 1 and r["checkpoint_score"] >= 0 for r in out.rows)
    assert out.best_config == s3.uri("tune", "baseline-margin", "best_config.yaml")
    local_best = tmp_path / "best_config.yaml"
    local_best.write_text(storage.read_text(out.best_config))
    best = build_config(None, [str(local_best)])  # what `reid train --config` does with it
    assert best.method == "baseline" and best.loss["triplet_margin"] == pytest.approx(
        out.best_overrides["loss.triplet_margin"])
    assert out.rows[0]["checkpoint_score"] == pytest.approx(out.best_score)
    assert out.rows[0]["loss.triplet_margin"] == pytest.approx(best.loss["triplet_margin"])
    for name in ("results.csv", "results.md", "objective.png"):
        assert len(storage.read_bytes(storage.join(out.sweep_dir, name))) > 0
    assert storage.read_bytes(storage.join(out.sweep_dir, "objective.png")).startswith(b"\x89PNG")
    runs_dir = storage.join(out.sweep_dir, "runs")
    runs = storage.list_dir(runs_dir)
    assert len(runs) == 2 and all(r.startswith("baseline-margin-") for r in runs)
    for name in runs:
        run = storage.join(runs_dir, name)
        assert {"config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "best"} <= set(storage.list_dir(run))
        assert storage.list_dir(storage.join(run, "checkpoints")) == ["epoch_0001"]
        summary = json.loads(storage.read_text(storage.join(run, "summary.json")))
        assert summary["best_checkpoint"] == storage.join(run, "best") and summary["epochs"] == 1
        assert storage.is_file(storage.join(run, "best", "state.pt"))
        # config.yaml names the bucket, so `reid train --resume <run URI>` continues the run there
        assert build_config(None, [str(local_config(run))]).ray.storage_path == runs_dir
    run = storage.join(runs_dir, runs[0])
    tested = _test_at_end(build_config(None, [str(local_config(run))]),
                          TrainResult(run_dir=run, best_checkpoint=storage.join(run, "best")))
    doc = json.loads(storage.read_text(storage.join(run, "test.json")))
    assert tested.test["valid_queries"] > 0 and doc["checkpoint"] == storage.join(run, "best")
    in_summary = json.loads(storage.read_text(storage.join(run, "summary.json")))["test"]
    assert doc["metrics"]["mAP"] == in_summary["mAP"] == pytest.approx(tested.test["mAP"])
    assert list(cwd.iterdir()) == []  # nothing in the working directory


class InterruptAfterFirstTrial:
    """A Tune callback that interrupts the sweep (like Ctrl+C) once one trial has completed. Tune restores it with
    the experiment: the resumed sweep, whose first trial is already done, is not interrupted."""

    def __new__(cls):
        from ray.tune import Callback

        class _Cb(Callback):
            def on_trial_complete(self, iteration, trials, trial, **info):
                if not [t for t in trials if t is not trial and t.status == "TERMINATED"]:
                    os.kill(os.getpid(), signal.SIGUSR1)  # Tune's handler: save the state and stop

        return _Cb()


def trial_results(sweep: str) -> dict[str, str]:
    """Trial directory name -> its result.json text, of the Tune experiment at `sweep` (in the bucket)."""
    out = {}
    for name in storage.list_dir(sweep):
        path = storage.join(sweep, name, "result.json")
        if storage.is_file(path):
            out[name] = storage.read_text(path)
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_interrupted_sweep_resumes_without_rerunning_completed_trials(ray_cluster, s3, tiny_cfg):
    """The experiment lives in the bucket: interrupted, then continued with --resume from there."""
    from ray import tune

    space = space_from_mapping("margin", SPACE)
    opts = SearchOptions(trials=2, out=s3.uri("tune"), name="resume-me", max_concurrent=1, cpus_per_trial=1.0)
    with pytest.raises(KeyboardInterrupt):  # Tune's graceful stop, then the command's interruption
        run_search(tiny_cfg, space, opts, callbacks=[InterruptAfterFirstTrial()])
    sweep = s3.uri("tune", "resume-me")
    assert tune.Tuner.can_restore(sweep)
    done_before = {k: v for k, v in trial_results(sweep).items() if v.strip()}
    assert len(done_before) == 1  # interrupted after the first of the two trials (one at a time)
    with pytest.raises(ReidError, match="--resume"):
        run_search(tiny_cfg, space, opts)  # the name is taken: refuse to overwrite without --resume
    opts.resume = True
    out = run_search(tiny_cfg, space, opts)
    assert len(out.rows) == 2 and out.errors == 0
    results = trial_results(sweep)
    assert len(results) == 2
    for trial_dir, text in done_before.items():
        assert results[trial_dir] == text  # finished before the interruption: not run again
    for text in results.values():
        assert len(text.strip().splitlines()) == 1  # one epoch each, reported once
        assert json.loads(text.strip().splitlines()[0])["epoch"] == 1
