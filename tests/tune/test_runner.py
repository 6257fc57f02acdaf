"""Tune plumbing without a cluster: paths, trial resources, the workers' RAY_ADDRESS."""

from __future__ import annotations

import os

import pytest

from reid.config import build_config
from reid.errors import ReidError
from tune import runner


@pytest.mark.timeout(60)
def test_trial_resources(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    local = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=0", "ray.cpus_per_worker=0.5"])
    r = runner.trial_resources(local, None, None, num_trials=16)
    assert r.per_trial == {"cpu": 0.5} and r.max_concurrent == 4
    assert runner.trial_resources(local, 1.0, None, 16).max_concurrent == 2
    assert runner.trial_resources(local, None, 1, 16).max_concurrent == 1
    assert runner.trial_resources(local, None, None, 2).max_concurrent == 2
    dist = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=1", "ray.cpus_per_worker=0.5",
                                                             "data.decode_workers=1", "data.decode_cpus=0.25"])
    r = runner.trial_resources(dist, None, None, 8)
    assert r.per_trial == {"cpu": 0.01} and r.total_cpus == pytest.approx(0.76) and r.max_concurrent == 2
    big = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=4", "ray.cpus_per_worker=1"])
    with pytest.raises(ReidError, match="needs"):
        runner.trial_resources(big, None, None, 8)


@pytest.mark.timeout(60)
def test_workers_get_the_cluster_address_and_the_driver_env_is_restored(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_GCS_SERVER_PORT", "1234")
    with runner._own_address_for_workers():
        port = int(os.environ["RAY_GCS_SERVER_PORT"])
        assert port != 1234 and os.environ["RAY_ADDRESS"].endswith(f":{port}")
    assert "RAY_ADDRESS" not in os.environ and os.environ["RAY_GCS_SERVER_PORT"] == "1234"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("before", [None, "1"])
@pytest.mark.parametrize("name", [runner.NEW_OUTPUT_ENV, runner.PRINT_TRIAL_ERRORS_ENV])
def test_tune_console_chooses_the_silent_reporter_for_the_fit_only(before, name, monkeypatch):
    """Without --verbose the fit runs with Tune's previous reporter (silent at verbose 0, where the default one
    draws a configuration box) and without Tune's traceback of each trial failure; the variables are put back as
    they were, and --verbose leaves them alone."""
    if before is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, before)
    with runner.tune_console(verbose=False):
        assert os.environ[name] == "0"
    assert os.environ.get(name) == before
    with pytest.raises(RuntimeError), runner.tune_console(verbose=False):
        raise RuntimeError("a failed fit")
    assert os.environ.get(name) == before
    with runner.tune_console(verbose=True):
        assert os.environ.get(name) == before
