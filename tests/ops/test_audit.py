"""The "nothing reported twice or lost" check of reid/training/audit.py on hand-written report logs."""

from __future__ import annotations

from reid.training.audit import check_reports, folded_epochs


def r(epoch: int) -> dict:
    return {"event": "report", "epoch": epoch}


FAIL = {"event": "failure", "errors": {"1": "ActorDiedError"}}


def test_clean_run():
    events = [r(1), r(2), r(3)]
    assert folded_epochs(events) == [1, 2, 3] and check_reports(events, 3) == []


def test_rollback_after_a_failure_is_not_a_duplicate():
    # killed in epoch 3, restored from epoch 1's checkpoint (epoch 2's report was lost or superseded)
    events = [r(1), r(2), FAIL, r(2), r(3)]
    assert folded_epochs(events) == [1, 2, 3] and check_reports(events, 3) == []


def test_repeat_without_a_restart_is_a_duplicate():
    problems = check_reports([r(1), r(2), r(2), r(3)], 3)
    assert any("reported twice without a restart" in p for p in problems)


def test_lost_and_out_of_order_epochs_are_caught():
    assert any("not 1..3" in p for p in check_reports([r(1), r(3)], 3))  # epoch 2 lost
    assert any("not 1..3" in p for p in check_reports([r(1), r(2)], 3))  # the run stopped early
    assert folded_epochs([r(2), r(1)]) == [1]


def test_more_repeats_than_failures_are_caught():
    events = [r(1), FAIL, r(1), FAIL, r(1), r(2)]
    assert check_reports(events, 2) == []
    assert any("reported 3 times with 1 failure" in p for p in check_reports([r(1), FAIL, r(1), r(1), r(2)], 2))
