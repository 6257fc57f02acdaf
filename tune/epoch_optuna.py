"""Optuna's intermediate values at the trial's epoch, not at Tune's count of its reports.

Ray Tune's `OptunaSearch` reports each result to its Optuna trial at `step = training_iteration`, Tune's count of the
results the trial's process has reported. A trial resumes its own run from its latest checkpoint (tune/trial.py),
in a fresh process whose count starts again at 1: by hand (2026-12-07, `reid tune search baseline --trials 2`
stopped at epochs 15 and 31 of 40, then `--resume`), Optuna warned `UserWarning: The reported value is ignored
because this step=N is already reported` 14 times (28 console lines), dropped the resumed epochs' values at steps
Optuna already held and filed the later ones 15 epochs early. Reported at `epoch`, the time axis ASHA uses too
(tune/search.py), a resumed trial's values land at their own epochs. The same epoch is reported again only when a
trial retrains it after a rollback to an earlier checkpoint (runs are deterministic per seed and epoch:
reid/data/pipeline.py); Optuna keeps the first value, and its warning about it is dropped.
"""

from __future__ import annotations

import warnings
from typing import Any

from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

EPOCH = "epoch"
_ALREADY_REPORTED = r"The reported value is ignored because this `step=\d+` is already reported"


class EpochOptunaSearch(OptunaSearch):
    """`OptunaSearch` whose intermediate values are at `result["epoch"]` (module docstring)."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if EPOCH in result:
            result = {**result, TRAINING_ITERATION: int(result[EPOCH])}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_ALREADY_REPORTED, category=UserWarning)
            super().on_trial_result(trial_id, result)
