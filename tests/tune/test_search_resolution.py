"""The sweep's note when its validation split cannot rank the best trial first."""

from __future__ import annotations

from tune.search import resolution_note


def test_tied_best_trials_are_said_to_be_indistinguishable():
    note = resolution_note([58.33, 58.33, 41.0], 58.33, 4)
    assert note is not None and note.startswith("2 trials share the best checkpoint_score (58.33) on 4 validation")
    assert "data.val_identities" in note


def test_a_lead_smaller_than_one_query_can_move_map_is_said():
    note = resolution_note([70.0, 65.0, 30.0], 70.0, 10)  # one of 10 queries moves mAP by up to 10 points
    assert note is not None and "leads the next by 5.00 points, less than one of the 10 validation queries" in note


def test_a_clear_lead_or_a_single_trial_says_nothing():
    assert resolution_note([70.0, 55.0], 70.0, 10) is None  # 15 > 10
    assert resolution_note([70.0], 70.0, 4) is None
    assert resolution_note([70.0, 69.0], 70.0, None) is None  # queries unknown: only ties are certain
