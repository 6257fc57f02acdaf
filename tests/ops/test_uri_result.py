"""A Ray run stored under a URI keeps its config, metrics, summary and checkpoint paths there (issue 18, item 6's
api.py bug): Ray's `Result.path` has no scheme, and wrapping it in `Path` put config.yaml / summary.json into the
job's temporary working directory. The bucket is a real S3 endpoint (moto's server on 127.0.0.1,
tests/ops/storage_server.py); Ray Train's fit is replaced by a fake `Result` whose paths look like Ray's
("bucket/runs/<name>", no scheme), and nothing may be written relative to the current directory."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow.fs
import pytest
import yaml

from reid import storage
from reid.config import build_config
from reid.evaluation.run import discovery
from reid.training import api
from tests.ops.storage_server import s3_server


@pytest.fixture
def s3():
    with s3_server() as server:
        yield server


def _fake_result(s3, cfg, epoch: int, score: float):
    run_path = f"{s3.bucket}/runs/{cfg.run_name()}"
    checkpoint = SimpleNamespace(path=f"{run_path}/checkpoint_2026-12-02_04-00-0{epoch}.000000")
    return SimpleNamespace(path=run_path, error=None, filesystem=pyarrow.fs.FileSystem.from_uri(s3.uri())[0],
                           best_checkpoints=[(checkpoint, {"checkpoint_score": score, "epoch": epoch})],
                           metrics={"epoch": epoch, "mAP": score}, metrics_dataframe=None)


def test_config_metrics_and_summary_go_to_the_bucket_and_checkpoints_keep_their_scheme(s3, tmp_path, monkeypatch):
    cwd = tmp_path / "job-working-dir"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # where `ray job submit` runs the driver
    cfg = build_config("baseline", ["baseline-synthetic"], [f"ray.storage_path={s3.uri('runs')}",
                                                            "ray.num_workers=2", "name=uri-run"])
    run_uri = s3.uri("runs", cfg.run_name())
    seen = {}

    def fake_fit(cfg, manifest, callbacks=None):
        seen["config_before_fit"] = storage.is_file(storage.join(run_uri, "config.yaml"))  # --resume needs it
        return fake

    fake = _fake_result(s3, cfg, 1, 20.0)
    monkeypatch.setattr(api, "manifest_path_for", lambda cfg: tmp_path / "manifest.parquet")
    monkeypatch.setattr(api, "_with_validation_split", lambda cfg, path: path, raising=False)
    monkeypatch.setattr("reid.training.driver.fit_ray", fake_fit)
    # test=False: the fake checkpoints hold no weights to test (the test split of a run in a bucket is evaluated in
    # tests/tune/test_search_ray.py, and by the bucket job of tests/ops/test_stalled_job.py)
    api.train(cfg, test=False)
    fake = _fake_result(s3, cfg, 2, 41.5)  # the run resumed: its own fit reports only epoch 2
    out = api.train(cfg, test=False)

    assert seen["config_before_fit"]
    assert out.run_dir == run_uri
    assert out.best_checkpoint == f"s3://{fake.best_checkpoints[0][0].path}" and out.best_map == 41.5
    assert yaml.safe_load(storage.read_text(storage.join(run_uri, "config.yaml")))["name"] == "uri-run"
    summary = json.loads(storage.read_text(storage.join(run_uri, "summary.json")))
    assert summary["best_checkpoint"] == out.best_checkpoint and summary["final"]["mAP"] == 41.5
    assert [r["epoch"] for r in discovery.read_history(run_uri)] == [1, 2]  # epoch 1 kept from the first fit
    assert [r["epoch"] for r in out.history] == [1, 2]
    assert list(cwd.iterdir()) == []  # nothing landed in the job's temporary working directory


def test_resume_source_reads_the_config_of_a_run_in_a_bucket(s3, tmp_path):
    from reid.errors import ReidError

    run_uri = s3.uri("runs", "r1")
    storage.write_text(storage.join(run_uri, "config.yaml"), "method: baseline\nname: r1\n")
    config_file, overrides = api.resume_source(run_uri)
    assert yaml.safe_load(open(config_file).read())["name"] == "r1"
    assert overrides == ["name=r1", f"ray.storage_path={s3.uri('runs')}"]
    with pytest.raises(ReidError, match="config.yaml"):
        api.resume_source(s3.uri("runs", "missing"))
    local = tmp_path / "runs" / "r2"
    local.mkdir(parents=True)
    (local / "config.yaml").write_text("name: r2\n")
    assert api.resume_source(local) == (str(local / "config.yaml"), ["name=r2", f"ray.storage_path={local.parent}"])


def test_a_checkpoint_named_by_uri_is_found_and_downloaded(s3):
    run = s3.uri("runs", "done")
    older, newer, cut = (storage.join(run, f"checkpoint_2026-12-02_04-00-0{i}.000000") for i in (1, 2, 3))
    storage.write_bytes(storage.join(older, "state.pt"), b"epoch 1")
    storage.write_bytes(storage.join(newer, "state.pt"), b"epoch 2")
    storage.write_text(storage.join(cut, "meta.json"), "{}")  # an upload cut short: no state.pt
    storage.write_text(storage.join(run, "checkpoint_manager_snapshot.json"), "{}")
    assert discovery.latest_checkpoint(run) == newer  # the newest whole one
    storage.write_text(storage.join(run, "summary.json"), json.dumps({"best_checkpoint": older}))
    assert discovery.latest_checkpoint(run) == older  # the recorded best
    with discovery.local_checkpoint(run) as (local, source):
        assert (local / "state.pt").read_bytes() == b"epoch 1" and source == older
    assert not local.parent.exists()  # the download is gone once read
    with discovery.local_checkpoint(storage.join(newer, "state.pt")) as (local, source):
        assert local.read_bytes() == b"epoch 2" and source == storage.join(newer, "state.pt")
    assert not local.exists()
    from reid.errors import ReidError

    with pytest.raises(ReidError, match="no checkpoint found"), discovery.local_checkpoint(s3.uri("runs", "empty")):
        pass
