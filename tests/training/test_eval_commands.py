"""`reid eval` (in-process and Ray Data batch inference) and `reid report` on a synthetic-data checkpoint."""

from __future__ import annotations

import json

import pytest
import ray

from reid.cli import main
from reid.training.api import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data, tiny_config):
    storage = tmp_path_factory.mktemp("runs")
    return train(tiny_config(tiny_data, storage, "train.epochs=1", "name=evalme")).run_dir


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_eval_local_prints_table_and_writes_json(trained_run, capsys):
    assert main(["eval", str(trained_run), "--backend", "local", "--report"]) == 0
    out = capsys.readouterr().out
    assert "mAP" in out and "synthetic" in out
    metrics = json.loads((trained_run / "eval.json").read_text())
    assert 0 <= metrics["mAP"] <= 100 and metrics["valid_queries"] > 0
    html = (trained_run / "report.html").read_text()
    assert "<h2>Training</h2>" in html and "<h2>CMC curve</h2>" in html  # the run's curves, as `reid report` draws


@pytest.mark.timeout(600)
def test_the_default_backend_says_it_extracts_a_small_split_in_this_process(trained_run, tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["eval", str(trained_run), "--out", str(tmp_path / "e.json")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("[reid] features in this process (") and "tracklets and no Ray cluster configured" in first
    assert not ray.is_initialized()  # no Ray started for it
    # only this process scores pairs: auto takes it even on a cluster (with --backend ray it is refused)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert main(["eval", str(trained_run), "--out", str(tmp_path / "p.json"), "eval.pairwise=true"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "[reid] features in this process (eval.pairwise / eval.tta run in this process)"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_eval_with_ray_data_batch_inference_matches_local(trained_run, tmp_path):
    local, remote = tmp_path / "local.json", tmp_path / "ray.json"
    assert main(["eval", str(trained_run), "--backend", "local", "--out", str(local)]) == 0
    ray.init(num_cpus=2, object_store_memory=300 * 1024**2, include_dashboard=False, log_to_driver=False)
    try:
        assert main(["eval", str(trained_run), "--backend", "ray", "--out", str(remote),
                     "data.decode_cpus=0.25"]) == 0
    finally:
        ray.shutdown()
    a, b = json.loads(local.read_text()), json.loads(remote.read_text())
    assert a["mAP"] == pytest.approx(b["mAP"], abs=1e-3) and a["R1"] == pytest.approx(b["R1"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_report_command_writes_self_contained_html(trained_run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(trained_run), "--queries", "3", "--out", str(out)]) == 0
    html = out.read_text()
    assert "data:image/png;base64" in html and "http://" not in html.replace("http://www.w3.org", "")


@pytest.mark.timeout(600)
def test_report_and_eval_refuse_an_unwritable_out_before_extracting_features(trained_run, tmp_path, capsys,
                                                                             monkeypatch):
    import reid.evaluation.run.evaluate as evaluate

    def no_features(*args, **kwargs):
        raise AssertionError("features extracted before --out was checked")

    monkeypatch.setattr(evaluate, "evaluate", no_features)
    (tmp_path / "file").write_text("x")
    assert main(["report", str(trained_run), "--out", str(tmp_path)]) == 2
    assert f"cannot write the report to {tmp_path}: it is a folder" in capsys.readouterr().err
    assert main(["eval", str(trained_run), "--backend", "local", "--out", str(tmp_path / "file" / "e.json")]) == 2
    assert f"cannot write the metrics to {tmp_path / 'file' / 'e.json'}: {tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err


def test_eval_of_a_folder_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cross_dataset_eval_of_a_run_on_another_dataset(trained_run, tmp_path, capsys):
    """Trained on the tiny set (12 training identities), tested on another synthetic set with 6: the classifier is
    left out with a message, the rest of the model is loaded, and the other set's test split is scored."""
    from reid.data.synth import generate

    other = tmp_path / "other"
    generate(other, "tiny", seed=7, ids_train=6)
    out = tmp_path / "cross.json"
    assert main(["eval", str(trained_run), "--backend", "local", "--out", str(out), f"data.root={other}"]) == 0
    printed = capsys.readouterr().out
    assert "ID classifier" in printed and "not loaded" in printed
    metrics = json.loads(out.read_text())
    assert metrics["valid_queries"] > 0 and 0 <= metrics["mAP"] <= 100


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_eval_of_a_run_in_a_bucket_matches_the_local_run(trained_run, tmp_path):
    """`reid eval s3://...`: the run copied into a bucket (moto's S3 server, tests/ops/storage_server.py) and its
    local directory gone, so the config and the checkpoint can only come from the bucket; the metrics equal the
    local run's, and eval.json is written back beside the run."""
    import shutil

    from reid import storage
    from tests.ops.storage_server import s3_server

    local = tmp_path / "local.json"
    assert main(["eval", str(trained_run), "--backend", "local", "--out", str(local)]) == 0
    with s3_server() as s3:
        run_uri = storage.copy_dir(trained_run, s3.uri("runs", trained_run.name))
        moved = tmp_path / "moved-away"
        shutil.move(trained_run, moved)
        try:
            assert main(["eval", run_uri, "--backend", "local"]) == 0
            remote = json.loads(storage.read_text(storage.join(run_uri, "eval.json")))
        finally:
            shutil.move(moved, trained_run)
    expected = json.loads(local.read_text())
    assert remote["mAP"] == pytest.approx(expected["mAP"], abs=1e-6) and remote["R1"] == expected["R1"]
    # the checkpoint in the bucket, named by its URI (its download into a temporary directory is gone)
    assert remote["checkpoint"].startswith(run_uri + "/"), remote["checkpoint"]
