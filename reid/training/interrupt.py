"""Ctrl-C during a Ray Train fit, taken as every other command takes it: one line at once, then `KeyboardInterrupt`
(the CLI's "interrupted", status 130, and `reid train`'s hint to resume).

Ray Train 2.60's `fit()` installs its own SIGINT handler in the driver (`DataParallelTrainer.
_register_sigint_handler`): the first Ctrl-C asks the Train controller to abort, the controller stops the workers and
exits, and the driver's wait for it ends in `SystemExit(1)`. By hand (2026-12-07, `reid train baseline` with 2
workers, Ctrl-C at epoch 5): status 1, not one line (Ray Train's "Gracefully aborting" is an INFO line, which the
console does not show), no hint of `--resume`. The handler also stays installed after `fit()` has returned: a
Ctrl-C during the test-split evaluation, or while Ray shut down at exit, called `abort` on the finished controller;
after `ray.shutdown` that started a new local Ray cluster (Ray's auto-init), printed a traceback ("Can't find actor
...") and left two of that cluster's processes running.

`interruptible(TorchTrainer)` prints the line when Ray's handler is called; `fit` turns the abort's `SystemExit`
into `KeyboardInterrupt` and puts the handler that was there before back when the fit ends, however it ends.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from reid.ray_runtime import restored_signal_handlers

STOPPING = ("[reid] Ctrl-C: stopping the run's workers (a few seconds; its checkpoints stay; Ctrl-C twice more "
            "ends the driver at once)")

_ASKED: dict[str, bool] = {}  # set when Ray Train's SIGINT handler ran during the current fit


def announced(ray_handler: Any) -> Any:
    """Ray Train's SIGINT handler, preceded by STOPPING (the first time) and recorded for `fit`."""

    def handler(signum: int, frame: Any) -> None:
        if not _ASKED:
            print(STOPPING, file=sys.stderr, flush=True)
        _ASKED["interrupted"] = True
        ray_handler(signum, frame)

    return handler


def interruptible(trainer_cls: type) -> type:
    """A subclass of `trainer_cls` (a Ray Train trainer) whose SIGINT handler is `announced`. Ray Train registers
    the handler only in the main thread (not in a Tune trial); on a Ray without the method nothing changes."""

    class Interruptible(trainer_cls):  # type: ignore[misc, valid-type]
        def _register_sigint_handler(self, controller: Any) -> None:
            super()._register_sigint_handler(controller)
            signal.signal(signal.SIGINT, announced(signal.getsignal(signal.SIGINT)))

    Interruptible.__name__ = Interruptible.__qualname__ = trainer_cls.__name__
    return Interruptible


def fit(trainer: Any) -> Any:
    """`trainer.fit()`; a Ctrl-C that aborted it raises KeyboardInterrupt, and the SIGINT handler of before the fit is
    back afterwards (module docstring)."""
    _ASKED.clear()
    with restored_signal_handlers(signal.SIGINT):
        try:
            return trainer.fit()
        except SystemExit as exc:
            if _ASKED:
                raise KeyboardInterrupt("Ray Train aborted the run on Ctrl-C") from exc
            raise
