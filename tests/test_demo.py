"""The README's main command, end to end (on the tiny preset and a small input so that CI stays quick)."""

from __future__ import annotations

import json

import pytest
import ray

from reid.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.mark.timeout(1200)
def test_demo_trains_evaluates_and_reports(tmp_path, capsys):
    out, data = tmp_path / "runs", tmp_path / "data"
    try:
        rc = main(["demo", "--preset", "tiny", "--data", str(data), "--out", str(out), "--epochs", "2",
                   "data.height=64", "data.width=32", "data.seq_len=2", "data.batches_per_epoch=2",
                   "ray.object_store_memory=300000000", "data.decode_cpus=0.25"])
    finally:
        ray.shutdown()
    assert rc == 0
    printed = capsys.readouterr().out
    assert "untrained (random init)" in printed and "report" in printed
    run = out / "train"
    summary = json.loads((run / "demo.json").read_text())
    for key in ("trained", "untrained"):
        assert 0.0 <= summary[key]["mAP"] <= 100.0 and summary[key]["valid_queries"] > 0
    html = (run / "report.html").read_text()
    assert "<html" in html.lower() and "data:image/png;base64" in html
    assert (run / "config.yaml").is_file() and list(run.glob("checkpoint_2*"))
