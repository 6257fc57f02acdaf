"""tune/asha.py: a trial that reports its last epoch is left to finish (Ray's ASHA would stop it there, before the
run's summary is written); the rungs below max_t still stop trials early."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from tune.asha import FinishingASHA, RungState


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


def _epochs(scheduler, trial, epochs, score):
    return [scheduler.on_trial_result(None, trial, {"epoch": e, "checkpoint_score": score}) for e in epochs]


def test_the_rungs_survive_a_resume_as_tune_restores_the_experiment():
    """Tune 2.60 pickles the scheduler with the callbacks once, when the experiment starts (tuner.pkl), saves only
    the callbacks' state as the sweep runs, and on --resume restores that state before it re-adds the trials.
    Trial a (score 50) passed the rung at epoch 16 alone; b (100) was at epoch 15 when the sweep stopped; after the
    resume b reaches epoch 16 first. Not interrupted, a trains on; with ASHA's rungs empty after the resume, a was
    judged at epoch 16's rung again with its epoch-32 score and stopped (the hand-run of tune/asha.py)."""
    import ray.cloudpickle as pickle

    def sweep_start():
        asha = FinishingASHA(time_attr="epoch", max_t=40, grace_period=1, reduction_factor=4,
                             metric="checkpoint_score", mode="max")
        return asha, RungState(asha)

    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")

    def first_session(asha):
        for t in (a, b):
            asha.on_trial_add(None, t)
        assert set(_epochs(asha, a, range(1, 32), 50.0)) == {TrialScheduler.CONTINUE}
        assert set(_epochs(asha, b, range(1, 16), 100.0)) == {TrialScheduler.CONTINUE}

    def after_resume(asha):
        assert _epochs(asha, b, [16], 100.0) == [TrialScheduler.CONTINUE]
        return _epochs(asha, a, [32, 33], 50.0)

    uninterrupted, _ = sweep_start()
    first_session(uninterrupted)
    expected = after_resume(uninterrupted)
    assert expected == [TrialScheduler.CONTINUE] * 2

    asha, callback = sweep_start()
    tuner_pkl = pickle.dumps({"scheduler": asha, "callbacks": [callback]})
    first_session(asha)
    callback_state = pickle.dumps(callback.get_state())  # Tune's callback-states-*.pkl, saved as the sweep runs

    restored = pickle.loads(tuner_pkl)
    restored["callbacks"][0].set_state(pickle.loads(callback_state))
    for t in (a, b):
        restored["scheduler"].on_trial_add(None, t)  # Tune re-adds the restored trials after the callbacks
    assert after_resume(restored["scheduler"]) == expected

    rays = pickle.loads(tuner_pkl)["scheduler"]  # what Tune alone resumes with: empty rungs
    for t in (a, b):
        rays.on_trial_add(None, t)
    assert after_resume(rays)[0] == TrialScheduler.STOP  # a is stopped at epoch 32


def test_a_new_trial_gets_a_bracket_and_a_restored_one_keeps_its_own():
    asha = FinishingASHA(time_attr="epoch", max_t=64, grace_period=1, reduction_factor=4, brackets=3,
                         metric="checkpoint_score", mode="max")
    trials = [SimpleNamespace(trial_id=f"t{i}") for i in range(20)]
    for t in trials:
        asha.on_trial_add(None, t)
    assigned = dict(asha._trial_info)
    for t in trials:
        asha.on_trial_add(None, t)  # again, as after a restore: no new draw
    assert asha._trial_info == assigned
