"""Optuna's intermediate values at the trial's epoch (tune/epoch_optuna.py): a trial resumed in a fresh process
(Tune's training_iteration counting from 1 again) files its values at their own epochs, without warnings."""

from __future__ import annotations

import warnings

import pytest
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from tune.epoch_optuna import EpochOptunaSearch


def intermediate_values(searcher, reports):
    """Feed `reports` ((training_iteration, epoch, score)) for one trial; Optuna's intermediate values."""
    searcher.set_search_properties("checkpoint_score", "max", {"loss.triplet_margin": tune.uniform(0.1, 0.5)})
    assert searcher.suggest("t1") is not None
    for iteration, epoch, score in reports:
        searcher.on_trial_result("t1", {"training_iteration": iteration, "epoch": epoch, "checkpoint_score": score})
    return searcher._ot_study.trials[0].intermediate_values


# epochs 1-3 in the first process, then the run resumed at epoch 4 in a new one (its count starts at 1 again)
RESUMED = [(1, 1, 10.0), (2, 2, 20.0), (3, 3, 30.0), (1, 4, 40.0), (2, 5, 50.0)]


def test_a_resumed_trial_reports_at_its_epochs_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = intermediate_values(EpochOptunaSearch(seed=0), RESUMED)
    assert values == {1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0, 5: 50.0}


def test_rays_searcher_misfiles_them_which_is_what_this_fixes():
    with pytest.warns(UserWarning, match="is already reported"):
        values = intermediate_values(OptunaSearch(seed=0), RESUMED)
    assert values == {1: 10.0, 2: 20.0, 3: 30.0}  # epochs 4 and 5 dropped at steps 1 and 2


def test_an_epoch_retrained_after_a_rollback_keeps_its_first_value_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = intermediate_values(EpochOptunaSearch(seed=0), [(1, 1, 10.0), (2, 2, 20.0), (1, 2, 20.0),
                                                                 (2, 3, 30.0)])
    assert values == {1: 10.0, 2: 20.0, 3: 30.0}
