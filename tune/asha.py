"""ASHA that lets a trial finish its last epoch itself.

Ray's `ASHAScheduler` stops a trial as soon as it reports `max_t` (`stop_last_trials`, on by default). For a Ray
Train trial that report comes from the Train controller while the trial's driver is still inside `fit`: Tune then
kills the trial before `reid.training.api.train` writes the run's `summary.json` and (for a run in a bucket)
`metrics.jsonl`, so every finished run of a Train-inside-Tune sweep lacked them. Here a trial that reached `max_t`
continues, and ends when its function returns (one epoch, the last, was reported: nothing more is trained). The
rungs below `max_t` stop trials early exactly as ASHA does (those runs are cut, and have no summary: they did not
finish). Ray's own `stop_last_trials=False` is not enough: a rung at `max_t` itself (`train.epochs` equal to the
grace period, e.g. one-epoch sweeps) would still stop a trial there.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class FinishingASHA(ASHAScheduler):
    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr in result and self._metric in result and result[self._time_attr] >= self._max_t:
            return TrialScheduler.CONTINUE  # the trial's own last epoch: it returns, after writing its summary
        return super().on_trial_result(tune_controller, trial, result)
