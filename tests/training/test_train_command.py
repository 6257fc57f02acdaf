"""`reid train` end to end in-process: what it prints at the end says where the run is and what to run next."""

from __future__ import annotations

import json

import pytest

from reid.cli import main
from tests.training.conftest import TINY


@pytest.mark.timeout(600)
def test_train_prints_the_run_its_test_metrics_and_the_next_commands(tiny_data, tmp_path, capsys):
    args = ["train", "baseline", f"data.root={tiny_data}", f"ray.storage_path={tmp_path}", "ray.num_workers=0",
            "train.epochs=1", "name=cli", *TINY]
    assert main(args) == 0
    out = capsys.readouterr().out
    run = tmp_path / "cli"
    test = json.loads((run / "test.json").read_text())
    assert f"[reid] run directory: {run}" in out
    assert f"mAP {test['metrics']['mAP']:.1f}" in out  # the test line is the test split's, as written
    assert f"[reid] next: `reid report {run}`" in out and f"`reid eval {run} eval.protocol=...`" in out
    assert main(["report", str(run)]) == 0  # ... and the command it names works
    assert "<h2>Training</h2>" in (run / "report.html").read_text()
