"""Ctrl-C during a sweep ends the command as an interruption, with Tune's own graceful stop kept.

Ray Tune 2.60's `tune.run` catches the first SIGINT itself (`ray.tune.tune._setup_signal_catching`): it logs
"Stop signal received ...", lets the trials' current step end, saves the experiment once more, logs "Experiment has
been interrupted ... Resume experiment with: Tuner.restore(path=..., trainable=...)" and returns the results as if
the sweep had ended. By hand (2026-12-07, `reid tune search baseline --space baseline --trials 2`, Ctrl-C after
50 s, one trial done and one at epoch 19 of 20): `reid tune` printed a best trial and a best config from the
trials so far and ended with status 0; Tune's advice names its Python API, not the command's `--resume`. Its
handler (for SIGUSR1 too) also stayed installed after the fit: a Ctrl-C while the command wrote its tables set an
event nobody read any more and was lost. A SIGTERM (`ray job stop`) already ended as an interruption
(reid.ray_runtime.stop_on_sigterm).

`fit_or_interrupt` keeps Tune's stop and its last save, replaces Tune's two lines with STOPPING, and raises
KeyboardInterrupt once `Tuner.fit()` has returned from an interrupted experiment: the command then says how to
continue (`--resume`) and ends with status 130. The signal handlers of before the fit are back after it.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from reid.ray_runtime import restored_signal_handlers

T = TypeVar("T")

STOPPING = ("[reid] stop signal (Ctrl-C): stopping the sweep once its trials end their current step; Tune saves "
            "the experiment (Ctrl-C again ends it at once)")
TUNE_LOGGER = "ray.tune.tune"
# Tune's lines for the stop, replaced by STOPPING and the command's hint to --resume
_STOP_RECEIVED = "Stop signal received"
_INTERRUPTED = "Experiment has been interrupted"


class _TuneStopLines(logging.Filter):
    """Drops Tune's two lines about the stop; prints STOPPING in place of the first."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_STOP_RECEIVED):
            print(STOPPING, file=sys.stderr, flush=True)
            return False
        return not message.startswith(_INTERRUPTED)


def fit_or_interrupt(fit: Callable[[], T]) -> T:
    """`fit()` (a `Tuner.fit`), raising KeyboardInterrupt when Tune stopped it on Ctrl-C (module docstring)."""
    from ray.tune import tune as tune_run

    original = tune_run._setup_signal_catching
    events: list[Any] = []

    def setup() -> Any:
        event = original()
        events.append(event)
        return event

    lines = _TuneStopLines()
    logger = logging.getLogger(TUNE_LOGGER)
    caught = [s for s in (signal.SIGINT, getattr(signal, "SIGUSR1", None)) if s is not None]
    tune_run._setup_signal_catching = setup
    logger.addFilter(lines)
    try:
        with restored_signal_handlers(*caught):
            result = fit()
    finally:
        tune_run._setup_signal_catching = original
        logger.removeFilter(lines)
    if any(event.is_set() for event in events):
        raise KeyboardInterrupt("Ray Tune stopped the experiment on Ctrl-C")
    return result
