"""Tune concurrency from the cluster's CPUs and GPUs, an explicit --max-concurrent honoured, autoscaling clusters
not refused, and Train-in-Tune trial drivers pinned to the head where the head advertises `reid_driver`."""

from __future__ import annotations

import pytest

from reid.config import build_config
from reid.errors import ReidError
from tune import runner


def _cluster(monkeypatch, **resources: float) -> None:
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: dict(resources))


def _gpu_trial(*extra: str):
    return build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=2", "ray.use_gpu=true",
                                                             "ray.gpus_per_worker=1", "ray.cpus_per_worker=4",
                                                             "data.decode_workers=2", "data.decode_cpus=2", *extra])


@pytest.fixture(autouse=True)
def _no_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_gpus_bound_the_concurrency_not_only_cpus(monkeypatch):
    _cluster(monkeypatch, CPU=200.0, GPU=8.0)  # CPUs for 16 trials, GPUs for 4
    r = runner.trial_resources(_gpu_trial(), None, None, num_trials=32)
    assert r.total_gpus == 2 and r.max_concurrent == 4


def test_in_process_gpu_trials_reserve_their_gpu(monkeypatch):
    _cluster(monkeypatch, CPU=64.0, GPU=2.0)
    cfg = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=0", "ray.use_gpu=true",
                                                            "ray.cpus_per_worker=4"])
    r = runner.trial_resources(cfg, None, None, 16)
    assert r.per_trial == {"cpu": 4.0, "gpu": 1.0} and r.max_concurrent == 2


GB = 1024**3


def test_memory_per_worker_bounds_the_concurrency_and_is_reserved(monkeypatch):
    """ray.memory_per_worker: an in-process trial reserves it, a Ray Train trial's workers each; the sweep runs as
    many at once as the cluster's memory holds (CPUs here would allow 16)."""
    _cluster(monkeypatch, CPU=8.0, memory=20.0 * GB)
    cfg = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=0", "ray.cpus_per_worker=0.5",
                                                            "ray.memory_per_worker=8"])
    r = runner.trial_resources(cfg, None, None, 16)
    assert r.per_trial == {"cpu": 0.5, "memory": 8 * GB} and r.max_concurrent == 2
    assert r.each() == "0.5 CPU + 8 GB memory"
    train = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=2", "ray.cpus_per_worker=0.5",
                                                              "ray.memory_per_worker=4", "data.decode_workers=1",
                                                              "data.decode_cpus=0.5"])
    r = runner.trial_resources(train, None, None, 16)
    assert r.per_trial == {"cpu": 0.01} and r.total_memory == 8 * GB and r.max_concurrent == 2
    too_big = build_config("baseline", ["baseline-synthetic"], ["ray.num_workers=0", "ray.memory_per_worker=30"])
    with pytest.raises(ReidError, match=r"needs 0.5 CPUs and 0 GPUs and 30 GB memory \(ray.memory_per_worker\) but the "
                                        r"cluster has 8 and 0 and 20 GB memory; .* / ray.memory_per_worker$"):
        runner.trial_resources(too_big, None, None, 4)


def test_an_explicit_max_concurrent_is_honoured_not_capped(monkeypatch):
    _cluster(monkeypatch, CPU=20.0, GPU=2.0)  # room for 1 trial now (12 CPUs, 2 GPUs each)
    assert runner.trial_resources(_gpu_trial(), None, 6, 32).max_concurrent == 6


def test_an_autoscaling_cluster_that_has_no_gpu_yet_is_not_refused(monkeypatch, capsys):
    _cluster(monkeypatch, CPU=0.0, reid_driver=100.0)  # a CPU: 0 head before the autoscaler adds workers
    with pytest.raises(ReidError, match="needs 12 CPUs and 2 GPUs"):  # a local cluster cannot grow: clear error
        runner.trial_resources(_gpu_trial(), None, None, 8)
    cfg = _gpu_trial("ray.address=auto")
    assert runner.trial_resources(cfg, None, None, 8).max_concurrent == 1
    assert "until the autoscaler adds nodes" in capsys.readouterr().out
    assert runner.trial_resources(cfg, None, 8, 8).max_concurrent == 8


def test_trial_drivers_take_a_head_slot_where_the_cluster_has_one(monkeypatch):
    _cluster(monkeypatch, CPU=100.0, GPU=8.0, reid_driver=100.0)
    r = runner.trial_resources(_gpu_trial(), None, None, 8)
    assert r.per_trial == {"cpu": 0.0, "reid_driver": 1.0}
    _cluster(monkeypatch, CPU=100.0, GPU=8.0)  # no driver slots (a plain local cluster): a sliver of CPU
    assert runner.trial_resources(_gpu_trial(), None, None, 8).per_trial == {"cpu": 0.01}


def test_the_head_slot_places_a_trial_on_the_head(monkeypatch):
    """What Tune builds from `per_trial` is a placement-group bundle that only the head can hold."""
    from ray.tune.execution.placement_groups import resource_dict_to_pg_factory

    _cluster(monkeypatch, CPU=100.0, GPU=8.0, reid_driver=100.0)
    bundle = resource_dict_to_pg_factory(runner.trial_resources(_gpu_trial(), None, None, 8).per_trial).bundles[0]
    assert bundle.get("reid_driver") == 1.0 and not bundle.get("CPU") and not bundle.get("GPU")
