"""Ctrl-C during a sweep (tune/interrupt.py): Tune's graceful stop kept, then KeyboardInterrupt; Tune's two lines
replaced by one; the signal handlers of before the fit back afterwards. Driven through Ray Tune's own signal
catching (`ray.tune.tune._setup_signal_catching`), as `tune.run` calls it."""

from __future__ import annotations

import logging
import signal

import pytest

from tune import interrupt


def tune_run(stop: bool):
    """What `tune.run` does around its loop: install its handler, stop when the event is set, log, return."""
    from ray.tune import tune as tune_module

    def fit():
        event = tune_module._setup_signal_catching()
        if stop:
            signal.raise_signal(signal.SIGINT)
            assert event.is_set()
            logging.getLogger(interrupt.TUNE_LOGGER).warning(
                "Experiment has been interrupted, but the most recent state was saved.\nResume experiment with: "
                "Tuner.restore(path=\"/x\", trainable=...)")
        return "results"

    return fit


@pytest.fixture
def before():
    """Handlers of the test's own in place of Python's, so that their return is visible; the originals put back."""
    originals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)}

    def mine(signum, frame):
        raise AssertionError("the handler of before the fit was called")

    for s in originals:
        signal.signal(s, mine)
    yield mine
    for s, handler in originals.items():
        signal.signal(s, handler)


def test_a_sweep_that_ends_returns_its_results_and_the_handlers_are_back(before, capsys):
    from ray.tune import tune as tune_module

    original = tune_module._setup_signal_catching
    assert interrupt.fit_or_interrupt(tune_run(stop=False)) == "results"
    assert signal.getsignal(signal.SIGINT) is before and signal.getsignal(signal.SIGUSR1) is before
    assert tune_module._setup_signal_catching is original
    assert capsys.readouterr().err == ""


def test_ctrl_c_ends_in_keyboard_interrupt_with_one_line_instead_of_tunes(before, capsys, caplog):
    from ray.tune import tune as tune_module

    original = tune_module._setup_signal_catching
    with caplog.at_level(logging.WARNING, logger=interrupt.TUNE_LOGGER):
        with pytest.raises(KeyboardInterrupt):
            interrupt.fit_or_interrupt(tune_run(stop=True))
    assert capsys.readouterr().err == interrupt.STOPPING + "\n"
    assert not [r for r in caplog.records if r.name == interrupt.TUNE_LOGGER]  # Tune's two lines dropped
    assert signal.getsignal(signal.SIGINT) is before and signal.getsignal(signal.SIGUSR1) is before
    assert tune_module._setup_signal_catching is original
    # the next sweep of the same process is not taken for an interrupted one, and Tune's other lines pass
    assert interrupt.fit_or_interrupt(tune_run(stop=False)) == "results"
    with caplog.at_level(logging.WARNING, logger=interrupt.TUNE_LOGGER):
        logging.getLogger(interrupt.TUNE_LOGGER).warning("Trials did not complete")
    assert [r.getMessage() for r in caplog.records] == ["Trials did not complete"]
