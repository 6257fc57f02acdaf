"""Ablation tables through reid.storage (moto's S3 server on 127.0.0.1): `reid tune ablation --from-results` reads a
results.json in a bucket and writes the table beside it, and `--results-md` copies the table and its JSON sidecar
to a URI. No training: the table is rendered from recorded results."""

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
