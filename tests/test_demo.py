"""The README's main command, end to end (on the tiny preset and a small input so that CI stays quick), run as the
user runs it: a `reid demo` process, whose console must stay quiet (issue 16: at most 40 lines, no traceback, no
`E` / `ERROR` line; Ray's own logs go to files and the output says where)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

MAX_LINES = 40
# an ERROR log line of Python (`ERROR name: ...`, `... ERROR file.py:12 -- ...`) or of Ray's C++ core
# (`[2026-12-02 04:37:10,995 E 12575 12771] core_worker.cc:2465: ...`)
ERROR_LINE = re.compile(r"\bERROR\b|\[\d{4}-\d\d-\d\d [\d:,.]+ E \d+ \d+\]")


@pytest.mark.timeout(1500)
def test_demo_trains_evaluates_and_reports_quietly(tmp_path):
    out, data = tmp_path / "runs", tmp_path / "data"
    cmd = [sys.executable, "-m", "reid.cli", "demo", "--preset", "tiny", "--data", str(data), "--out", str(out),
           "--epochs", "2", "data.height=64", "data.width=32", "data.seq_len=2", "data.batches_per_epoch=2",
           "ray.object_store_memory=300000000", "data.decode_cpus=0.25"]
    # bytes, not text=True: universal newlines would turn each \r of a progress bar's redraw into a line of its own
    proc = subprocess.run(cmd, capture_output=True, timeout=1400)
    stdout, stderr = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    console = stdout + stderr
    lines = console.rstrip("\n").split("\n")  # as a terminal shows it: a progress bar redraws its one line
    assert proc.returncode == 0, console[-4000:]
    assert len(lines) <= MAX_LINES, f"{len(lines)} lines:\n" + console
    assert "Traceback" not in console, console
    assert not [ln for ln in lines if ERROR_LINE.search(ln)], console
    assert sum("[reid] epoch" in ln for ln in lines) == 2  # one progress line per epoch
    assert sum("ImageNet weights for ResNet" in ln for ln in lines) <= 1, console  # rank 0's, not each worker's
    assert "Reporting training result" not in console, console  # Ray Train's, per epoch and rank: quiet_train_reports
    logs = re.search(r"Ray's own logs: (\S+)", console)
    assert logs and Path(logs.group(1)).is_dir()
    assert "untrained (random init)" in stdout and "report" in stdout
    # the last line names the next commands, with the demo's own paths and a query that exists
    nxt = re.fullmatch(r"\[reid demo\] next: `reid index (\S+) --manifest (\S+) --out (\S+)`, then `reid search "
                       r"(\S+) --query (\S+) --row (\S+)` .*", stdout.rstrip("\n").split("\n")[-1])
    assert nxt and nxt.group(1) == str(out / "train") and nxt.group(3) == nxt.group(4) == str(out / "idx"), stdout
    from reid.data.records import read_manifest

    queries = {r.tracklet_id for r in read_manifest(nxt.group(2)).records if r.role == "query"}
    assert nxt.group(2) == nxt.group(5) and nxt.group(6) in queries
    run = out / "train"
    summary = json.loads((run / "demo.json").read_text())
    for key in ("trained", "untrained"):
        assert 0.0 <= summary[key]["mAP"] <= 100.0 and summary[key]["valid_queries"] > 0
    html = (run / "report.html").read_text()
    assert "<html" in html.lower() and "data:image/png;base64" in html and "<h2>Training</h2>" in html
    assert (run / "config.yaml").is_file() and list(run.glob("checkpoint_2*"))


@pytest.mark.timeout(600)
def test_a_demo_whose_out_holds_one_trained_otherwise_names_the_difference_and_another_out(tmp_path, capsys,
                                                                                           monkeypatch):
    """train's refusal named `reid train --resume` and name=NEW, which the demo does not take."""
    from reid.cli import main

    out, data = tmp_path / "runs", tmp_path / "data"
    small = ["--preset", "tiny", "--data", str(data), "--out", str(out), "--workers", "0", "data.height=64",
             "data.width=32", "data.seq_len=2", "data.batches_per_epoch=2"]
    assert main(["demo", "--epochs", "1", *small]) == 0
    capsys.readouterr()
    monkeypatch.setattr("reid.training.api.train", lambda *a, **k: pytest.fail("the demo trained"))
    assert main(["demo", "--epochs", "2", *small]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} holds a demo trained with other settings (train.epochs: 1 -> 2): give another --out" in err
    assert "--resume" not in err and "name=NEW" not in err
