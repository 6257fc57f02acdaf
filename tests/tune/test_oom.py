"""A trial that Ray's memory monitor kills fails that trial, not the sweep (tune/oom.py).

Its own Ray cluster, whose memory monitor kills at a threshold set a few GB above what the machine uses now; a
grid of two trials run one at a time through the project's runner (`tune.runner.fit`): the first allocates memory
until the monitor kills it (retried once, killed again), the second reports and ends. With ray 2.60 alone the first
kill ends `Tuner.fit()` with `RuntimeError("Caught unexpected exception: ...")` and the second trial never runs."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from tune.console import failure_reason
from tune.oom import TrialOutOfMemory

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GIB = 1024**3
HEADROOM = 3 * GIB  # the cluster, Tune's actors and the trial's imports stay well under it (about 1.5 GB here)


def hungry(config: dict) -> None:
    from ray import tune

    if config["hungry"]:
        held = []
        for _ in range(4 * 12):  # up to 12 GiB in quarter-GiB steps, touched so that they are resident
            held.append(np.ones(GIB // 4 // 8))
            time.sleep(0.1)
        raise AssertionError("Ray's memory monitor never killed the trial")
    tune.report({"score": 1.0})


@pytest.fixture(scope="module")
def low_memory_cluster():
    import ray
    from ray._private.utils import get_system_memory, get_used_memory

    from reid.ray_runtime import start_local_ray

    threshold = min(0.95, (get_used_memory() + HEADROOM) / get_system_memory())
    start_local_ray(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False,
                    _system_config={"memory_usage_threshold": threshold, "memory_monitor_refresh_ms": 100})
    yield threshold
    ray.shutdown()


@pytest.mark.timeout(300)
def test_a_trial_killed_for_memory_fails_alone_and_the_sweep_goes_on(low_memory_cluster, tmp_path, capsys):
    from ray import tune

    from tune.runner import fit

    trainable = tune.with_resources(hungry, {"cpu": 1})
    results = fit(trainable, path=tmp_path / "oom", resume=False, param_space={"hungry": tune.grid_search([True,
                                                                                                           False])},
                  tune_config=tune.TuneConfig(max_concurrent_trials=1), failures=1)
    by_hunger = {r.config["hungry"]: r for r in results}
    assert by_hunger[False].error is None and by_hunger[False].metrics["score"] == 1.0
    error = by_hunger[True].error
    assert isinstance(error, TrialOutOfMemory) and "running low on memory" in str(error), repr(error)

    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[reid] trial ")]
    killed = r"Ray's memory monitor killed \d+ worker\(s\): the node was at [\d.]+GB of [\d.]+GB"
    restarts = [line for line in lines if re.search(r" restarts \(retry 1 of 1\): " + killed + "$", line)]
    failed = [line for line in lines if re.search(r" failed  \(" + killed + r"; error: .*error\.txt\)$", line)]
    assert len(restarts) == 1 and len(failed) == 1, out[-3000:]
    assert sum(" done" in line for line in lines) == 1, out[-3000:]


def test_failure_reason_is_the_latest_failure_in_one_line():
    oom = ("Failure # 2 (occurred at 2026-12-07_03-18-06)\nray.exceptions.OutOfMemoryError: 1 worker(s) were "
           "killed due to the node running low on memory. Memory on the node (IP: 192.0.2.2, ID: c4cc) was 22.63GB "
           "used / 23.54GB limit (0.961365)\nOOM kill reason: ...\nRefer to the documentation ...\n")
    raised = ("Failure # 1 (occurred at 2026-12-07_03-17-06)\nray.exceptions.RayTaskError(ValueError): "
              "ray::run_trial()\n  File \"x.py\", line 3, in f\n    raise ValueError('bad margin')\n"
              "ValueError: bad margin\n")
    assert failure_reason(raised) == "ValueError: bad margin"
    assert failure_reason(raised + oom) == "Ray's memory monitor killed 1 worker(s): the node was at 22.63GB of 23.54GB"
    assert failure_reason(oom + raised) == "ValueError: bad margin"
    assert failure_reason("Failure # 1 (occurred at x)\n" + "E" * 500).endswith("...")
    assert len(failure_reason("Failure # 1 (occurred at x)\n" + "E" * 500)) == 200
    assert failure_reason("") is None and failure_reason(None) is None
    died = ("Failure # 1 (occurred at 2026-12-07_04-08-11)\nray.exceptions.ActorDiedError: The actor died unexpectedly "
            "before finishing this task.\n\tclass_name: ImplicitFunc\n\tactor_id: 3d91\nThe actor is dead because "
            "its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly "
            "exits with a connection error code 2. End of file. Some common causes include: (1) the process was "
            "killed by the OOM killer due to high memory usage. (2) ray stop --force is called.\n")
    assert failure_reason(died) == ("the trial's process died (SYSTEM_ERROR: Worker unexpectedly exits with a "
                                    "connection error code 2)")


def test_the_killed_trials_error_survives_tunes_pickle():
    from ray import cloudpickle

    error = cloudpickle.loads(cloudpickle.dumps(TrialOutOfMemory("1 worker(s) were killed ... running low on "
                                                                 "memory")))
    assert isinstance(error, TrialOutOfMemory) and str(error).endswith("running low on memory")
    assert not error.preempted  # counted as a failure by Tune (Trial._handle_ray_actor_error)
