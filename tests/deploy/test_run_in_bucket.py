"""The commands that take a trained run, on a run stored in a bucket (where `reid tune --out s3://...` and
`ray.storage_path=s3://...` leave them): `reid report`, `export`, `index` and `search` read it by its URI, and the
report and the export go back into the bucket beside it; `reid index` also embeds a dataset in the bucket. They
used to turn s3://b/runs/x into the local path s3:/b/runs/x and answer that it was not a run."""

from __future__ import annotations

import json
import os

import pytest

from reid import storage
from reid.cli import main
from tests.ops.storage_server import s3_server


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.mark.timeout(600)
def test_report_export_index_and_search_take_a_run_by_its_uri(trained_run, deploy_data, s3, tmp_path, capsys):
    uri = storage.copy_dir(trained_run, s3.uri("runs", trained_run.name))
    manifest = str(deploy_data / "manifest.parquet")

    assert main(["report", uri, "--queries", "1"]) == 0
    assert f"report written to {uri}/report.html" in capsys.readouterr().out
    assert storage.read_text(storage.join(uri, "report.html")).lstrip().lower().startswith("<!doctype html")

    assert main(["export", uri, "--format", "torchscript"]) == 0
    side = json.loads(storage.read_text(storage.join(uri, "export", "model.pt.json")))
    assert side["run"] == uri and storage.is_file(storage.join(uri, "export", "model.pt"))
    assert f"to {uri}/export/model.pt" in capsys.readouterr().out

    idx = tmp_path / "idx"
    assert main(["index", uri, "--manifest", manifest, "--out", str(idx), "--backend", "local"]) == 0
    meta = json.loads((idx / "meta.json").read_text())
    assert meta["run"] == uri and meta["model_hash"] == side["model_hash"]
    capsys.readouterr()
    assert main(["search", str(idx), "--query", manifest, "--row", "0", "--top-k", "2", "--json"]) == 0  # meta's run
    out = capsys.readouterr().out
    assert len(json.loads(out[:out.rindex("]") + 1])) == 2
    assert main(["search", str(idx), "--query", s3.uri("q.mp4")]) == 2  # a query file is read locally
    assert "--query s3://reid-test/q.mp4: `reid search` works on local files and folders only" in \
        capsys.readouterr().err
    # a gallery in the bucket too: the dataset directory copied up as it is, its manifest named by URI
    data = storage.copy_dir(deploy_data, s3.uri("data", deploy_data.name))
    assert main(["index", uri, "--manifest", data, "--out", str(tmp_path / "idx2"), "--backend", "local"]) == 0
    meta2 = json.loads((tmp_path / "idx2" / "meta.json").read_text())
    assert meta2["count"] == meta["count"] and meta2["model_hash"] == meta["model_hash"]
    assert main(["index", uri, "--manifest", manifest, "--out", s3.uri("idx")]) == 2
    assert "--out s3://reid-test/idx: `reid index` works on local files and folders only" in capsys.readouterr().err
    assert not os.path.exists("s3:") and not (tmp_path / "s3:").exists()
