"""reid.storage against a real S3 protocol (moto's server on 127.0.0.1, tests/ops/storage_server.py) and the local
filesystem: the same calls, the same results."""

from __future__ import annotations

import json
import os
import re

import pytest

from reid import storage
from reid.errors import ReidError
from tests.ops.storage_server import s3_server


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, s3):
    return str(tmp_path / "store") if request.param == "local" else s3.uri(request.node.originalname)


def test_write_read_exists_list(root):
    f = storage.join(root, "runs", "a", "summary.json")
    assert not storage.exists(f) and storage.list_dir(storage.join(root, "runs")) == []
    storage.write_text(f, json.dumps({"best_mAP": 41.5}))
    storage.write_bytes(storage.join(root, "runs", "a", "state.bin"), b"\x00\x01")
    assert storage.exists(f) and storage.is_file(f) and not storage.is_dir(f)
    assert storage.is_dir(storage.join(root, "runs", "a"))
    assert json.loads(storage.read_text(f)) == {"best_mAP": 41.5}
    assert storage.read_bytes(storage.join(root, "runs", "a", "state.bin")) == b"\x00\x01"
    assert storage.list_dir(storage.join(root, "runs", "a")) == ["state.bin", "summary.json"]
    storage.write_text(f, "{}")  # replaced whole
    assert storage.read_text(f) == "{}"


def test_local_files_get_the_mode_of_a_plain_new_file(tmp_path, s3):
    """Written or downloaded under a temporary name and renamed: still readable by the volume's other users."""
    plain = tmp_path / "plain"
    plain.write_text("x")
    written = storage.write_text(tmp_path / "run" / "eval.json", "{}")
    remote = storage.write_text(s3.uri("modes") + "/ckpt.pt", "w")
    fetched = storage.download(remote, tmp_path / "cache" / "ckpt.pt")
    for f in (written, fetched):
        assert oct(os.stat(f).st_mode & 0o777) == oct(plain.stat().st_mode & 0o777) == oct(storage.NEW_FILE_MODE)
    assert storage.NEW_FILE_MODE & 0o044  # under the usual umasks, 0o022 / 0o002: group and others read


def test_copy_a_directory_up_and_down(root, tmp_path):
    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "state.pt").write_bytes(b"weights")
    (src / "sub" / "meta.json").write_text("{}")
    up = storage.copy_dir(src, storage.join(root, "up", "ckpt"))
    assert storage.list_dir(up) == ["state.pt", "sub"]
    down = storage.local_dir(up, tmp_path / "cache")
    assert (down / "state.pt").read_bytes() == b"weights" and (down / "sub" / "meta.json").read_text() == "{}"


def test_uri_paths_keep_their_scheme():
    assert storage.join("s3://b/runs/", "a", "/x.json") == "s3://b/runs/a/x.json"
    assert storage.parent("s3://b/runs/a/") == "s3://b/runs" and storage.name("s3://b/runs/a/") == "a"
    assert storage.is_uri("gs://b/x") and not storage.is_uri("runs/a")


def test_clear_errors(s3, tmp_path):
    with pytest.raises(ReidError, match="not found"):
        storage.read_text(s3.uri("missing.json"))
    with pytest.raises(ReidError, match="not found"):
        storage.read_text(tmp_path / "missing.json")
    with pytest.raises(ReidError, match="cannot open storage location"):
        storage.exists("nosuchscheme://x/y")
    with pytest.raises(ReidError, match="not a directory"):
        storage.copy_dir(s3.uri("missing"), tmp_path / "x")


def test_check_writable_says_in_one_line_where_a_file_cannot_go(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ReidError, match=r"cannot write the report to .*folder: it is a folder; give the path of a "):
        storage.check_writable(tmp_path / "folder", "the report")
    with pytest.raises(ReidError, match=r"cannot write the report to .*file/r.html: .*file is a file, not a folder"):
        storage.check_writable(tmp_path / "file" / "r.html", "the report")
    storage.check_writable(tmp_path / "new" / "sub" / "r.html", "the report")  # its folders made, no file left
    assert (tmp_path / "new" / "sub").is_dir() and not list((tmp_path / "new" / "sub").iterdir())
    storage.check_writable(tmp_path / "file", "the report")  # an existing file is replaced later, kept now
    assert (tmp_path / "file").read_text() == "x"
    storage.check_writable("s3://bucket/r.html", "the report")  # not checked: the upload says


def test_a_manifest_in_a_bucket_reads_back_with_its_local_frame_root(s3, tmp_path):
    from reid.data.records import Manifest, ManifestError, TrackletRecord, read_manifest, write_manifest

    records = [TrackletRecord(f"t{i}", pid=i // 2, camid=i % 2, dataset="tiny", role=role, num_frames=4,
                              video=f"videos/t{i}.mp4") for i, role in enumerate(["train", "train", "query", "gallery"])]
    local = read_manifest(write_manifest(Manifest(records, tmp_path, "tiny", meta={"preset": "tiny"})))
    uri = write_manifest(local, s3.uri("data", "manifest.parquet"))
    back = read_manifest(s3.uri("data"))  # the directory holding it, as for a local manifest
    assert uri == s3.uri("data", "manifest.parquet")
    assert back.records == local.records and back.root == local.root.resolve()
    assert back.dataset == local.dataset and back.meta == local.meta
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(s3.uri("nothing-here"))


def test_the_unreadable_list_is_written_next_to_a_run_in_a_bucket(s3, monkeypatch):
    from reid.config import build_config
    from reid.training import driver

    monkeypatch.setattr("reid.data.pipeline.unreadable_tracklets", lambda ledger: {3: "t3.mp4: moov atom not found"})
    cfg = build_config("baseline", ["baseline-synthetic"], [])
    assert driver.report_unreadable(None, cfg, s3.uri("runs", "u")) == {3: "t3.mp4: moov atom not found"}
    assert json.loads(storage.read_text(s3.uri("runs", "u", "unreadable.json"))) == {"3": "t3.mp4: moov atom not found"}


@pytest.mark.parametrize("argv, match", [
    (["prepare", "mars", "--root", "s3://b/mars", "--out", "{tmp}/o"], "--root s3://b/mars: `reid prepare` works on "
     "local files and folders only; copy it to a local disk first"),
    (["prepare", "mars", "--root", "{tmp}", "--out", "s3://b/o"], r"--out s3://b/o: .*\(`aws s3 sync DIR s3://b/o`\)"),
    (["synth", "--preset", "tiny", "--out", "gs://b/x"], r"`reid synth` .*\(`gcloud storage rsync -r DIR gs://b/x`\)"),
    (["pose", "--manifest", "s3://b/m.parquet", "--out", "{tmp}/k"], "--manifest s3://b/m.parquet: `reid pose` works"),
    (["bench", "data", "--manifest", "s3://b/m.parquet"], "`reid bench data` works on local files and folders only"),
])
def test_commands_that_need_local_folders_refuse_a_uri_in_one_line(tmp_path, capsys, argv, match):
    """Path("s3://b/x") is the local folder s3:/b/x: these commands once wrote there, or failed deep inside."""
    from reid.cli import main

    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err, err
    assert not (tmp_path / "s3:").exists() and not os.path.exists("s3:") and not os.path.exists("gs:")


@pytest.mark.parametrize("argv, match", [
    (["bench", "data", "--json", "{tmp}/file/x.json"], r"cannot write the JSON to .*/file/x.json: .*/file is a file"),
    (["bench", "data", "--plot", "{tmp}"], r"cannot write the plot to .*: it is a folder"),
    (["bench", "pose", "--json", "{tmp}/file/x.json"], r"cannot write the JSON to .*/file/x.json: .*/file is a file"),
    (["bench", "gpu", "--out", "{tmp}/file"], r"cannot write the summary to .*/file/gpu-.*\.json: .*/file is a file"),
    (["transfer-attributes", "--source", "{tmp}/none", "--target", "{tmp}/none", "--out", "{tmp}/file/a.csv"],
     r"cannot write the attribute CSV to .*/file/a.csv: .*/file is a file"),
    (["transfer-attributes", "--source", "{tmp}/none", "--target", "{tmp}/none", "--out", "{tmp}/a.csv",
      "--out-manifest", "{tmp}"], r"cannot write the labelled manifest to .*: it is a folder"),
    (["tune", "frame-weights", "{tmp}/none", "--out", "{tmp}/file/w.json"], r"cannot write the JSON to .*/w.json: "),
])
def test_long_commands_check_their_output_files_before_the_work(tmp_path, capsys, monkeypatch, argv, match):
    """They wrote their JSON, plot, summary or CSV at the end: minutes of fits (of a GPU's time, of training) lost to
    a typo."""
    import torch

    from reid.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # bench gpu: past its CUDA check, to --out's
    monkeypatch.setattr("reid.bench.data.burst_warning", lambda *a: pytest.fail("bench data went on"))
    monkeypatch.setattr("reid.bench.pose.load_frames", lambda *a: pytest.fail("bench pose went on"))
    (tmp_path / "file").write_text("")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and len(err.strip().splitlines()) == 1, err
