"""tune/asha.py: a trial that reports its last epoch is left to finish (Ray's ASHA would stop it there, before the
run's summary is written); the rungs below max_t still stop trials early."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from tune.asha import FinishingASHA


def _scheduler(cls):
    s = cls(time_attr="epoch", max_t=4, grace_period=1, reduction_factor=2, metric="checkpoint_score", mode="max")
    trials = [SimpleNamespace(trial_id=f"t{i}") for i in range(3)]
    for t in trials:
        s.on_trial_add(None, t)
    return s, trials


def test_a_trial_at_max_t_continues_to_its_own_end_where_rays_asha_stops_it():
    ours, (a, *_) = _scheduler(FinishingASHA)
    rays, (b, *_) = _scheduler(ASHAScheduler)
    last = {"epoch": 4, "checkpoint_score": 50.0}
    assert ours.on_trial_result(None, a, last) == TrialScheduler.CONTINUE
    assert rays.on_trial_result(None, b, last) == TrialScheduler.STOP


def test_the_rungs_below_max_t_still_stop_a_worse_trial():
    for cls in (FinishingASHA, ASHAScheduler):
        s, (good, bad, _) = _scheduler(cls)
        assert s.on_trial_result(None, good, {"epoch": 1, "checkpoint_score": 80.0}) == TrialScheduler.CONTINUE
        assert s.on_trial_result(None, bad, {"epoch": 1, "checkpoint_score": 10.0}) == TrialScheduler.STOP
