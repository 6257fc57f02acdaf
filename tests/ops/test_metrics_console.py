"""What `reid train` / `reid tune` print besides the metrics (issue 19 item 6): the epoch line carries mINP, a
finished trial gets one line with the same numbers, and where to watch the run live."""

from __future__ import annotations

from types import SimpleNamespace

from reid.training.metrics import format_trial_line, trial_line_callback, watch_line
from reid.training.worker import format_epoch_line

EPOCH = {"epoch": 3, "lr": 1e-3, "loss": 1.25, "train/loss": 1.25, "train/ce": 1.0, "train/triplet": 0.25,
         "clips_per_s": 12.5, "data_wait_s": 0.02, "val/mAP": 41.25, "val/R1": 55.5, "val/mINP": 12.75}


def test_epoch_line_has_validation_map_r1_and_minp():
    line = format_epoch_line(EPOCH, 10)
    assert line.startswith("[reid] epoch   3/10  loss 1.2500 (ce 1.000 triplet 0.250)")
    assert line.endswith("| val mAP 41.2 R1 55.5 mINP 12.8")


def test_trial_line_has_the_same_numbers():
    line = format_trial_line("abc_00001", {**EPOCH, "test/mAP": 38.0}, "done")
    assert line == ("[reid] trial abc_00001 done  epoch 3  loss 1.2500  | val mAP 41.2 R1 55.5 mINP 12.8"
                    "  | test mAP 38.0")
    assert format_trial_line("t", {}, "failed") == "[reid] trial t failed"


def test_trial_callback_prints_one_line_per_finished_or_failed_trial(capsys):
    cb = trial_line_callback()
    cb.on_trial_complete(1, [], SimpleNamespace(trial_id="t1", last_result=EPOCH))
    cb.on_trial_error(2, [], SimpleNamespace(trial_id="t2", last_result=None))
    out = capsys.readouterr().out.splitlines()
    assert out == [format_trial_line("t1", EPOCH, "done"), "[reid] trial t2 failed"]


def test_watch_line_names_the_run_the_board_and_the_alerts():
    line = watch_line("my-run")  # no Ray connection here: the line still says where the dashboard is
    assert "run 'my-run'" in line and "infra/grafana/reid-dashboard.json" in line
    assert "infra/prometheus/reid-alerts.yml" in line and "dashboard" in line
    assert "the sweep's trials" in watch_line("")
