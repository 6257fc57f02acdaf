"""ASHA that lets a trial finish its last epoch itself, and whose rungs survive `--resume`.

Ray's `ASHAScheduler` stops a trial as soon as it reports `max_t` (`stop_last_trials`, on by default). For a Ray
Train trial that report comes from the Train controller while the trial's driver is still inside `fit`: Tune then
kills the trial before `reid.training.api.train` writes the run's `summary.json` and (for a run in a bucket)
`metrics.jsonl`, so every finished run of a Train-inside-Tune sweep lacked them. Here a trial that reached `max_t`
continues, and ends when its function returns (one epoch, the last, was reported: nothing more is trained). The
rungs below `max_t` stop trials early exactly as ASHA does (those runs are cut, and have no summary: they did not
finish). Ray's own `stop_last_trials=False` is not enough: a rung at `max_t` itself (`train.epochs` equal to the
grace period, e.g. one-epoch sweeps) would still stop a trial there.

Ray Tune 2.60 saves the searcher's and the callbacks' state with the experiment, not the scheduler's: a resumed sweep
started ASHA with empty rungs. By hand (2026-12-07, `reid tune search baseline --space baseline --trials 2
train.epochs=40`, stopped at epochs 31 and 15, then `--resume`): the first trial, past the rung at epoch 16 with
no rival there yet, was judged at that rung again with its epoch-32 score against the other's epoch-16 score and
stopped at epoch 33; the same sweep not interrupted trains it to epoch 40. The rungs of the finished trials were
lost too, so every later cutoff was drawn from fewer trials. `RungState`, a Tune callback that holds the scheduler,
saves the rungs and each trial's bracket as the callback's state, and puts them back when Tune restores the
experiment (before it re-adds the trials, which keep their bracket).
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class FinishingASHA(ASHAScheduler):
    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr in result and self._metric in result and result[self._time_attr] >= self._max_t:
            return TrialScheduler.CONTINUE  # the trial's own last epoch: it returns, after writing its summary
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if trial.trial_id in self._trial_info:  # a restored trial keeps the bracket it was judged in
            return
        super().on_trial_add(tune_controller, trial)

    def rung_state(self) -> dict[str, Any]:
        """The brackets (each rung's recorded scores) and which bracket each unfinished trial is in; pickled as one
        object, so that the trials' brackets stay the same objects as the list's."""
        return {"brackets": self._brackets, "trial_info": self._trial_info, "num_stopped": self._num_stopped}

    def restore_rungs(self, state: dict[str, Any]) -> None:
        self._brackets = state["brackets"]
        self._trial_info = state["trial_info"]
        self._num_stopped = state["num_stopped"]


class RungState(Callback):
    """Saves `scheduler`'s rungs with the experiment and restores them on `--resume` (module docstring). Tune pickles
    the callback with the scheduler in one file (tuner.pkl), so the restored callback holds the restored scheduler."""

    def __init__(self, scheduler: FinishingASHA) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict[str, Any] | None:
        return {"asha": self.scheduler.rung_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        if "asha" in state:
            self.scheduler.restore_rungs(state["asha"])
