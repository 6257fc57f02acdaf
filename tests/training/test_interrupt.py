"""Ctrl-C during a Ray Train fit (reid/training/interrupt.py): one line at once, KeyboardInterrupt instead of Ray
Train's SystemExit, and the SIGINT handler of before the fit back afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reid.training import interrupt
from tests.training.conftest import TINY

REPO = Path(__file__).resolve().parents[2]


class FakeTrainer:
    """What Ray Train 2.60's DataParallelTrainer does with SIGINT: `fit` registers a handler that aborts the run
    (here: records the call) and leaves it installed; an aborted run's wait ends in SystemExit(1)."""

    def __init__(self, during_fit=None):
        self.during_fit = during_fit
        self.aborted = 0

    def _register_sigint_handler(self, controller):
        def ray_handler(signum, frame):
            self.aborted += 1

        signal.signal(signal.SIGINT, ray_handler)

    def fit(self):
        self._register_sigint_handler(controller=None)
        if self.during_fit:
            return self.during_fit(self)
        return "result"


def ctrl_c_then_ray_exits(trainer):
    signal.raise_signal(signal.SIGINT)
    assert trainer.aborted == 1  # Ray's handler ran, after ours
    raise SystemExit(1)


@pytest.fixture
def before():
    """A handler of the test's own in place of Python's, so that its return is visible; the original is put back."""
    original = signal.getsignal(signal.SIGINT)

    def mine(signum, frame):
        raise AssertionError("the handler of before the fit was called")

    signal.signal(signal.SIGINT, mine)
    yield mine
    signal.signal(signal.SIGINT, original)


def test_the_handler_of_before_the_fit_is_back_after_it_returns_or_raises(before):
    trainer = interrupt.interruptible(FakeTrainer)()
    assert interrupt.fit(trainer) == "result"
    assert signal.getsignal(signal.SIGINT) is before

    def fails(trainer):
        raise RuntimeError("TrainingFailedError")

    with pytest.raises(RuntimeError):
        interrupt.fit(interrupt.interruptible(FakeTrainer)(fails))
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_says_what_happens_and_ends_in_keyboard_interrupt(before, capsys):
    trainer = interrupt.interruptible(FakeTrainer)(ctrl_c_then_ray_exits)
    with pytest.raises(KeyboardInterrupt):
        interrupt.fit(trainer)
    assert capsys.readouterr().err == interrupt.STOPPING + "\n"
    assert signal.getsignal(signal.SIGINT) is before


def test_the_line_is_printed_once_for_the_three_ctrl_c_ray_train_counts(before, capsys):
    def three_times(trainer):
        for _ in range(3):
            signal.raise_signal(signal.SIGINT)
        assert trainer.aborted == 3
        raise SystemExit(0)  # Ray Train's third Ctrl-C: sys.exit(0)

    with pytest.raises(KeyboardInterrupt):
        interrupt.fit(interrupt.interruptible(FakeTrainer)(three_times))
    assert capsys.readouterr().err.count("[reid] Ctrl-C") == 1


def test_a_system_exit_without_ctrl_c_is_left_alone(before):
    def exits(trainer):
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        interrupt.fit(interrupt.interruptible(FakeTrainer)(exits))
    # an earlier fit's Ctrl-C does not count for the next one
    with pytest.raises(KeyboardInterrupt):
        interrupt.fit(interrupt.interruptible(FakeTrainer)(ctrl_c_then_ray_exits))
    with pytest.raises(SystemExit):
        interrupt.fit(interrupt.interruptible(FakeTrainer)(exits))


def test_the_pinned_ray_train_registers_its_handler_through_the_method_we_extend():
    from ray.train.torch import TorchTrainer

    assert callable(getattr(TorchTrainer, "_register_sigint_handler", None))
    wrapped = interrupt.interruptible(TorchTrainer)
    assert issubclass(wrapped, TorchTrainer) and wrapped.__name__ == "TorchTrainer"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(300)
def test_ctrl_c_stops_a_ray_train_run_in_one_line_and_keeps_what_resumes_it(tiny_data, tmp_path):
    """A real `reid train` with a Ray Train worker, Ctrl-C after its first checkpoint: status 130, our lines, no
    traceback; Ray Train's index, which a resume reads, whole and naming a whole checkpoint (the resume itself ran
    by hand, 2026-12-07: docs/training.md). Before: status 1 and no line at all."""
    import json

    from reid.evaluation.run.discovery import complete_checkpoints

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(REPO))
    run = tmp_path / "ctrl-c"
    args = ["baseline", f"data.root={tiny_data}", f"ray.storage_path={tmp_path}", "name=ctrl-c", *TINY,
            "ray.num_workers=1", "ray.cpus_per_worker=0.5", "data.decode_cpus=0.25",
            f"ray.object_store_memory={300 * 1024**2}", "train.epochs=500"]
    proc = subprocess.Popen([sys.executable, "-m", "reid.cli", "train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the test's timeout bounds a run that never gets there: Ray Train's controller registers a checkpoint some
        # time after the worker reported it (its index appears then)
        while not (run / "checkpoint_manager_snapshot.json").is_file():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - start
    finally:
        proc.kill()
    assert proc.returncode == 130, (proc.returncode, out[-2000:], err[-3000:])
    lines = err.splitlines()
    assert interrupt.STOPPING in lines
    assert lines[-2:] == [f"[reid] {run} keeps its checkpoints: continue it with `reid train --resume {run}`",
                          "reid train: interrupted"], err[-3000:]
    assert "Traceback" not in err and "Failed to query Ray Train Controller" not in out + err
    assert took < 60
    index = json.loads((run / "checkpoint_manager_snapshot.json").read_text())
    latest = index["latest_checkpoint_result"]["checkpoint_dir_name"]
    assert run / latest in complete_checkpoints(run)
