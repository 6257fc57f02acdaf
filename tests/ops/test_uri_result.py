"""A Ray run stored under a URI keeps its config, summary and checkpoint paths there (issue 18, item 6's api.py bug):
Ray's `Result.path` has no scheme, and wrapping it in `Path` put config.yaml / summary.json into the job's temporary
working directory. The bucket is a pyarrow SubTreeFileSystem over a temp dir: paths inside it look like S3's
("bucket/runs/<name>"), and nothing may be written relative to the current directory."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow.fs
import yaml

from reid.config import build_config
from reid.training import api


def test_config_and_summary_go_to_the_bucket_and_checkpoints_keep_their_scheme(tmp_path, monkeypatch):
    bucket_root = tmp_path / "s3"
    cwd = tmp_path / "job-working-dir"
    (bucket_root / "bucket").mkdir(parents=True)
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # where `ray job submit` runs the driver
    cfg = build_config("baseline", ["baseline-synthetic"], ["ray.storage_path=s3://bucket/runs", "ray.num_workers=2",
                                                            "name=uri-run"])
    run_path = f"bucket/runs/{cfg.run_name()}"
    checkpoint = SimpleNamespace(path=f"{run_path}/checkpoint_2026-12-02_04-00-00.000000")
    fake = SimpleNamespace(path=run_path, error=None,
                           filesystem=pyarrow.fs.SubTreeFileSystem(str(bucket_root), pyarrow.fs.LocalFileSystem()),
                           best_checkpoints=[(checkpoint, {"checkpoint_score": 41.5, "epoch": 2})],
                           metrics={"epoch": 2, "mAP": 41.5}, metrics_dataframe=None)
    monkeypatch.setattr(api, "manifest_path_for", lambda cfg: tmp_path / "manifest.parquet")
    monkeypatch.setattr("reid.training.driver.fit_ray", lambda cfg, manifest, callbacks=None: fake)

    out = api.train(cfg)

    assert out.run_dir == f"s3://{run_path}"
    assert out.best_checkpoint == f"s3://{checkpoint.path}" and out.best_map == 41.5
    stored = bucket_root / run_path
    assert yaml.safe_load((stored / "config.yaml").read_text())["name"] == "uri-run"
    summary = json.loads((stored / "summary.json").read_text())
    assert summary["best_checkpoint"] == f"s3://{checkpoint.path}" and summary["final"]["mAP"] == 41.5
    assert list(cwd.iterdir()) == []  # nothing landed in the job's temporary working directory
