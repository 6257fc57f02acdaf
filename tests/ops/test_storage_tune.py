"""Tune outputs through reid.storage (moto's S3 server on 127.0.0.1), without Ray or training: `reid tune ablation
--from-results` reads a results.json in a bucket and writes the table beside it, `--results-md` copies the table
and its JSON sidecar to a URI; a sweep's outputs and an ablation's per-trial test files in a bucket; the per-epoch
upload of an in-process run stored under a URI. The sweeps themselves run into a bucket in
tests/tune/test_search_ray.py."""

from __future__ import annotations

import json

import pytest

from reid import storage
from reid.cli import main
from reid.commands.tune import _with_suffix
from tests.ops.storage_server import s3_server

RECORDED = {"table": "astpn-fig5", "meta": {"our dataset": "synthetic (recorded)"},
            "rows": {"RNN-CNN (mean pooling)": {"R1": 30.0, "R5": 50.0, "R10": 60.0, "R20": 70.0},
                     "ASTPN (both)": {"R1": 35.0, "R5": 55.0, "R10": 65.0, "R20": 75.0}}}


@pytest.mark.timeout(120)
def test_a_table_from_results_in_a_bucket_is_written_to_the_bucket(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with s3_server() as s3:
        results = storage.write_text(s3.uri("ablations", "fig5", "results.json"), json.dumps(RECORDED))
        dest = s3.uri("results", "astpn-fig5.md")
        assert main(["tune", "ablation", "astpn-fig5", "--from-results", results, "--results-md", dest]) == 0
        assert storage.list_dir(s3.uri("ablations", "fig5")) == ["results.json", "table.csv", "table.json",
                                                                  "table.md"]
        md = storage.read_text(dest)
        assert md == storage.read_text(s3.uri("ablations", "fig5", "table.md"))
        assert "| RNN-CNN (mean pooling) | RNN-CNN | 58.0 | 30.0 | 84.0 | 50.0 |" in md
        sidecar = json.loads(storage.read_text(s3.uri("results", "astpn-fig5.json")))
        assert sidecar == json.loads(storage.read_text(s3.uri("ablations", "fig5", "table.json")))
    assert list(tmp_path.iterdir()) == []  # nothing in the working directory


def test_suffixes_keep_a_uri_whole():
    assert _with_suffix("s3://b/results/t.md", ".json") == "s3://b/results/t.json"
    assert _with_suffix("results/t.md", ".json") == "results/t.json"
    assert _with_suffix("/abs/t", ".json") == "/abs/t.json"
    assert _with_suffix("t.md", ".json") == "t.json"


class _Result:
    """What write_search_outputs / collect read of a Tune Result."""

    def __init__(self, config: dict, metrics: dict, path: str = "trial") -> None:
        self.config, self.metrics, self.error, self.path = config, metrics, None, path


class _Grid(list):
    def get_best_result(self, metric: str, mode: str) -> _Result:
        return max(self, key=lambda r: r.metrics[metric])


def test_experiment_locations_keep_a_uri_whole(tmp_path, monkeypatch):
    from pathlib import Path

    from tune.runner import experiment_dir

    monkeypatch.chdir(tmp_path)
    assert experiment_dir("s3://b/tune/", "sweep") == "s3://b/tune/sweep"
    assert experiment_dir("runs/tune", "sweep") == tmp_path / "runs" / "tune" / "sweep"
    assert isinstance(experiment_dir(Path("runs"), "x"), Path)
    # what fit() hands Tune's RunConfig: the experiment's name and the storage path above it, scheme kept
    assert (storage.name("s3://b/tune/sweep"), storage.parent("s3://b/tune/sweep")) == ("sweep", "s3://b/tune")


@pytest.mark.timeout(120)
def test_sweep_outputs_and_ablation_test_files_in_a_bucket(tmp_path, monkeypatch):
    """A sweep's outputs (best config, results table, plot) written into a bucket and a local directory alike from
    the same results; an ablation's per-trial test.json read from a bucket; experiment_state on a bucket prefix."""
    from reid.config import build_config
    from reid.errors import ConfigError
    from tune.ablation import collect, load_spec
    from tune.runner import experiment_state
    from tune.search import write_search_outputs
    from tune.spaces import space_from_mapping

    monkeypatch.chdir(tmp_path)
    cfg = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=0"])
    space = space_from_mapping("margin", {"method": "baseline", "params": {"loss.triplet_margin": "uniform(0.1, 0.8)"}})
    grid = _Grid([_Result({"loss.triplet_margin": m}, {"checkpoint_score": s, "epoch": 1, "trial_id": t})
                  for m, s, t in ((0.2, 10.0, "a"), (0.5, 30.0, "b"))])
    with s3_server() as s3:
        sweep = s3.uri("tune", "sweep")
        assert experiment_state(sweep) == "new"
        bucket = write_search_outputs(cfg, space, grid, sweep, trials=2)
        local = write_search_outputs(cfg, space, grid, tmp_path / "sweep", trials=2)
        assert bucket.best_config == storage.join(sweep, "best_config.yaml") and bucket.best_score == 30.0
        assert storage.list_dir(sweep) == ["best_config.yaml", "objective.png", "results.csv", "results.md"]
        for name in storage.list_dir(sweep):
            assert storage.read_bytes(storage.join(sweep, name)) == (tmp_path / "sweep" / name).read_bytes(), name
        assert "triplet_margin: 0.5" in storage.read_text(bucket.best_config)
        assert local.best_config == tmp_path / "sweep" / "best_config.yaml"
        # what the sweep prints next, `reid train --config <its best_config.yaml>`, reads it from the bucket
        assert build_config(None, [bucket.best_config]).loss["triplet_margin"] == 0.5
        with pytest.raises(ConfigError, match=f"config file '{sweep}/missing.yaml' not found"):
            build_config(None, [storage.join(sweep, "missing.yaml")])
        storage.write_text(storage.join(sweep, "list.yaml"), "- 1\n")
        with pytest.raises(ConfigError, match="must hold a mapping at the top level"):
            build_config(None, [storage.join(sweep, "list.yaml")])
        storage.remove(storage.join(sweep, "list.yaml"))
        assert experiment_state(sweep) == "blocked"  # files, but no Tune experiment: never overwritten

        spec = load_spec("astpn-fig5")
        rows = {"00": {"name": spec.rows[0].name, "settings": None}}
        per_query = {"tracklet_id": ["q1", "q2"], "ap": [0.5, 1.0], "first_match_rank": [2, 1]}
        runs = s3.uri("abl", "runs")
        storage.write_text(storage.join(runs, "abl-t1", "test.json"), json.dumps({"per_query": per_query}))
        results = [_Result({"row": "00", "seed": 0}, {"test/mAP": 75.0, "trial_id": "t1", "epoch": 1})]
        recorded = collect(spec, results, rows, runs, "abl")
        assert recorded["query_ids"] == ["q1", "q2"]
        assert recorded["per_query"][spec.rows[0].name]["0"]["ap"] == [0.5, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]  # the bucket's outputs wrote nothing here


@pytest.mark.timeout(120)
def test_an_in_process_run_in_a_bucket_continues_from_it_and_uploads_each_epoch(tmp_path, monkeypatch):
    """`reid.training.api._train_into_uri` around a stand-in for the training loop (`_train_local`, which calls the
    per-epoch hook as LocalSession does). Attempt 1 finds the bucket's epoch 1 in its scratch directory, trains epochs
    2 and 3 and is stopped inside the caller's hook of epoch 3 (SystemExit, as Tune's `report` stops a trial);
    every epoch's checkpoint, best/, metrics.jsonl and summary.json are in the bucket already, checkpoints beyond
    `train.keep_checkpoints` deleted there as locally, the caller's hook got the checkpoint URIs, and the scratch
    directory is gone. Attempt 2 continues from the bucket and returns the run by URI."""
    import shutil

    from reid.config import build_config
    from reid.training import api

    seen, found = [], []

    def loop(cfg, manifest_path, run_dir, on_epoch):
        epochs = [int(n.removeprefix("epoch_")) for n in sorted(p.name for p in (run_dir / "checkpoints").iterdir())]
        found.append((run_dir, epochs, (run_dir / "metrics.jsonl").read_text().count("\n")))
        for epoch in range(max(epochs) + 1, 5):
            best = epoch in (1, 3)
            ckpt = run_dir / "checkpoints" / f"epoch_{epoch:04d}" if epoch != 4 else None  # epoch 4: no checkpoint
            if ckpt is not None:
                ckpt.mkdir(parents=True)
                (ckpt / "state.pt").write_bytes(f"weights {epoch}".encode())
                if best:
                    shutil.copytree(ckpt, run_dir / "best", dirs_exist_ok=True)
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"epoch": epoch, "best_mAP": 10.0 * epoch}) + "\n")
            on_epoch({"epoch": epoch, "is_best": best}, ckpt)
        return api.TrainResult(run_dir=run_dir, history=[{"epoch": e} for e in (1, 2, 3, 4)],
                               best_checkpoint=run_dir / "best", best_map=30.0, final={"epoch": 4})

    def hook(metrics, checkpoint):
        seen.append((metrics["epoch"], checkpoint))
        if metrics["epoch"] == 3 and len(found) == 1:
            raise SystemExit(0)

    monkeypatch.setattr(api, "_train_local", loop)
    with s3_server() as s3:
        cfg = build_config("baseline", ["baseline-synthetic"], [f"ray.storage_path={s3.uri('runs')}", "name=run",
                                                                 "ray.num_workers=0", "train.keep_checkpoints=2"])
        target = s3.uri("runs", "run")
        storage.write_text(storage.join(target, "checkpoints", "epoch_0001", "state.pt"), "weights 1")
        storage.write_text(storage.join(target, "metrics.jsonl"), json.dumps({"epoch": 1, "best_mAP": 10.0}) + "\n")
        with pytest.raises(SystemExit):
            api._train_into_uri(cfg, "unused", hook, test=False)

        assert found[0][1:] == ([1], 1) and not found[0][0].exists()
        assert storage.list_dir(storage.join(target, "checkpoints")) == ["epoch_0002", "epoch_0003"]
        assert storage.read_text(storage.join(target, "best", "state.pt")) == "weights 3"
        assert seen == [(2, storage.join(target, "checkpoints", "epoch_0002")),
                        (3, storage.join(target, "checkpoints", "epoch_0003"))]
        summary = json.loads(storage.read_text(storage.join(target, "summary.json")))
        assert (summary["best_checkpoint"], summary["epochs"], summary["best_mAP"]) == (
            storage.join(target, "best"), 3, 30.0)
        assert f"storage_path: {s3.uri('runs')}" in storage.read_text(storage.join(target, "config.yaml"))

        out = api._train_into_uri(cfg, "unused", hook, test=False)
        assert found[1][1:] == ([2, 3], 3) and not found[1][0].exists()
        assert seen[-1] == (4, None)
        assert (out.run_dir, out.best_checkpoint) == (target, storage.join(target, "best"))
        assert [json.loads(r)["epoch"] for r in storage.read_text(storage.join(target, "metrics.jsonl")).split("\n")
                if r] == [1, 2, 3, 4]
        assert json.loads(storage.read_text(storage.join(target, "summary.json")))["epochs"] == 4


def test_a_resumed_sweep_with_another_trial_count_says_it_keeps_its_own(tmp_path, capsys):
    """Tune restores an experiment with the number of trials it started with: `--resume --trials 6` of a 4-trial
    sweep ran no more and said "stopped before every trial finished (interrupted?); continue it with --resume"."""
    from reid.config import build_config
    from tune.search import write_search_outputs
    from tune.spaces import space_from_mapping

    cfg = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=0"])
    space = space_from_mapping("margin", {"method": "baseline", "params": {"loss.triplet_margin": "uniform(0.1, 0.8)"}})
    grid = _Grid([_Result({"loss.triplet_margin": m}, {"checkpoint_score": s, "epoch": 1, "trial_id": t})
                  for m, s, t in ((0.2, 10.0, "a"), (0.5, 30.0, "b"))])
    write_search_outputs(cfg, space, grid, tmp_path / "sweep", trials=2)
    assert "note:" not in capsys.readouterr().out
    write_search_outputs(cfg, space, grid, tmp_path / "sweep", trials=6)
    out = capsys.readouterr().out
    assert ("[reid] note: the experiment holds 2 trials; --trials sets how many a new experiment runs, a resumed one "
            "keeps its own (another --name starts a new one)") in out
    assert "interrupted?" not in out
    grid.append(_Result({"loss.triplet_margin": 0.3}, {"trial_id": "c", "checkpoint_score": -1.0}))  # no epoch yet
    write_search_outputs(cfg, space, grid, tmp_path / "sweep", trials=3)
    assert "the sweep stopped before every trial finished (interrupted?)" in capsys.readouterr().out
