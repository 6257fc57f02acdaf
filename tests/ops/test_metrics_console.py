"""What `reid train` / `reid tune` print besides the metrics (issue 19 item 6): the epoch line carries mINP, a
finished trial gets one line with the same numbers, and where to watch the run live."""

from __future__ import annotations

from types import SimpleNamespace

from reid.training.metrics import watch_line
from reid.training.worker import format_epoch_line, validation_part
from tune import console
from tune.console import format_params, format_status_line, format_trial_line, trial_line_callback

EPOCH = {"epoch": 3, "lr": 1e-3, "loss": 1.25, "train/loss": 1.25, "train/ce": 1.0, "train/triplet": 0.25,
         "clips_per_s": 12.5, "data_wait_s": 0.02, "val/mAP": 41.25, "val/R1": 55.5, "val/mINP": 12.75}


def test_epoch_line_has_validation_map_r1_and_minp():
    line = format_epoch_line(EPOCH, 10)
    assert line.startswith("[reid] epoch   3/10  loss 1.2500 (ce 1.000 triplet 0.250)")
    assert line.endswith("| val mAP 41.2 R1 55.5 mINP 12.8")


def test_validation_part_counts_the_queries_behind_the_numbers():
    assert validation_part({**EPOCH, "val/valid_queries": 4}).endswith("mINP 12.8 (4 queries)")
    assert validation_part({**EPOCH, "val/valid_queries": 1.0}).endswith("mINP 12.8 (1 query)")
    assert validation_part({"epoch": 1, "loss": 2.0}) == ""
    line = format_epoch_line({**EPOCH, "val/valid_queries": 60}, 10)
    assert line.endswith("| val mAP 41.2 R1 55.5 mINP 12.8 (60 queries)")
    assert format_trial_line("t", {**EPOCH, "val/valid_queries": 60}, "done").endswith("mINP 12.8 (60 queries)")


def test_trial_line_has_the_same_numbers():
    line = format_trial_line("abc_00001", {**EPOCH, "test/mAP": 38.0}, "done")
    assert line == ("[reid] trial abc_00001 done  epoch 3  loss 1.2500  | val mAP 41.2 R1 55.5 mINP 12.8"
                    "  | test mAP 38.0")
    assert format_trial_line("t", {}, "failed") == "[reid] trial t failed"


def test_trial_callback_prints_a_line_when_a_trial_starts_ends_or_fails(capsys):
    cb = trial_line_callback()
    params = {"loss.margin": 0.48416, "data.seq_len": 2}
    cb.on_trial_start(0, [], SimpleNamespace(trial_id="t1", evaluated_params=params))
    cb.on_trial_start(0, [], SimpleNamespace(trial_id="t0", evaluated_params={}))
    cb.on_trial_complete(1, [], SimpleNamespace(trial_id="t1", last_result=EPOCH))
    cb.on_trial_error(2, [], SimpleNamespace(trial_id="t2", last_result=None, error_file="/x/t2/error.txt"))
    cb.on_trial_error(2, [], SimpleNamespace(trial_id="t3", last_result=None, error_file=None))
    out = capsys.readouterr().out.splitlines()
    assert out == ["[reid] trial t1 started: loss.margin=0.484, data.seq_len=2", "[reid] trial t0 started",
                   format_trial_line("t1", EPOCH, "done"), "[reid] trial t2 failed  (error: /x/t2/error.txt)",
                   "[reid] trial t3 failed"]


def test_a_restarted_or_failed_trial_says_why_in_its_line(capsys, tmp_path):
    error_file = tmp_path / "error.txt"
    error_file.write_text("Failure # 1 (occurred at 2026-12-07_03-17-06)\nTraceback (most recent call last):\n"
                          "  File \"x.py\", line 3, in f\nValueError: bad margin\n")
    cb = trial_line_callback()
    trial = SimpleNamespace(trial_id="t4", last_result={"epoch": 1, "loss": 6.2494}, error_file=str(error_file),
                            max_failures=2, run_metadata=SimpleNamespace(num_failures=1))
    cb.on_trial_recover(3, [], trial)
    cb.on_trial_error(4, [], trial)
    assert capsys.readouterr().out.splitlines() == [
        "[reid] trial t4 restarts (retry 1 of 2): ValueError: bad margin",
        f"[reid] trial t4 failed  epoch 1  loss 6.2494  (ValueError: bad margin; error: {error_file})"]


def test_a_status_line_at_most_once_a_period_while_trials_remain(capsys, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    cb = trial_line_callback()
    trials = [SimpleNamespace(status=s) for s in ("RUNNING", "TERMINATED", "TERMINATED", "ERROR", "PENDING")]
    cb.on_step_end(1, trials)  # too soon
    clock[0] += console.STATUS_PERIOD_S
    cb.on_step_end(2, trials)
    cb.on_step_end(3, trials)  # too soon again
    clock[0] += console.STATUS_PERIOD_S
    cb.on_step_end(4, [SimpleNamespace(status="TERMINATED")])  # nothing left to wait for
    assert capsys.readouterr().out.splitlines() == ["[reid] trials after 5 min: 1 running, 2 done, 1 failed, 1 pending"]
    cb.setup()  # a resumed fit counts from its own start
    clock[0] += console.STATUS_PERIOD_S
    cb.on_step_end(5, trials)
    assert capsys.readouterr().out.startswith("[reid] trials after 5 min:")


def test_a_failed_trials_error_file_in_the_experiments_storage():
    def trial(kind: str, name: str | None) -> SimpleNamespace:
        return SimpleNamespace(run_metadata=SimpleNamespace(error_filename=name), path="bucket/exp/run_trial_1",
                               storage=SimpleNamespace(storage_filesystem=SimpleNamespace(type_name=kind)),
                               error_file="/tmp/ray/staging/error.txt")

    assert console.error_location(trial("s3", "error.txt")) == "s3://bucket/exp/run_trial_1/error.txt"
    assert console.error_location(trial("local", "error.txt")) == "bucket/exp/run_trial_1/error.txt"
    assert console.error_location(trial("local", None)) is None


def test_params_and_status_words():
    assert [console.plural(n, "trial") for n in (0, 1, 2)] == ["0 trials", "1 trial", "2 trials"]
    assert format_params({"a": 1e-4, "b": "x", "c": 3}) == "a=0.0001, b=x, c=3"
    assert format_status_line(["PAUSED", "PENDING"], 59) == "[reid] trials after 1 min: 1 pending, 1 paused"


def test_watch_line_names_the_run_the_board_and_the_alerts():
    line = watch_line("my-run")  # no Ray connection here: the line still says where the dashboard is
    assert "run 'my-run'" in line and "infra/grafana/reid-dashboard.json" in line
    assert "infra/prometheus/reid-alerts.yml" in line and "dashboard" in line
    assert "the sweep's trials" in watch_line("")


def test_a_trial_that_asha_ends_before_the_sweeps_epochs_says_so(capsys):
    cb = trial_line_callback(epochs=40)
    cb.on_trial_complete(1, [], SimpleNamespace(trial_id="t1", last_result={**EPOCH, "epoch": 16}))
    cb.on_trial_complete(1, [], SimpleNamespace(trial_id="t2", last_result={**EPOCH, "epoch": 40}))
    trial_line_callback().on_trial_complete(1, [], SimpleNamespace(trial_id="t3", last_result=EPOCH))  # ablations
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[reid] trial t1 stopped early by ASHA  epoch 16 of 40  loss 1.2500  | val mAP 41.2")
    assert out[1].startswith("[reid] trial t2 done  epoch 40") and out[2].startswith("[reid] trial t3 done  epoch 3")
