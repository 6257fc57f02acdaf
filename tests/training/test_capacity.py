"""Train workers a cluster cannot hold: an error on a local cluster, a line saying what the run waits for elsewhere
(reid.training.capacity, reid.training.driver.check_capacity)."""

from __future__ import annotations

import pytest

from reid.errors import ReidError
from reid.training import driver
from reid.training.capacity import shortfall, workers_that_fit


def _greedy(per_worker: dict[str, float], nodes: list[dict[str, float]]) -> int:
    """Place identical bundles one at a time on the first node with room left, as a scheduler would."""
    free = [dict(n) for n in nodes]
    placed = 0
    while True:
        node = next((f for f in free if all(f.get(k, 0.0) + 1e-9 >= v for k, v in per_worker.items() if v > 0)),
                    None)
        if node is None:
            return placed
        for k, v in per_worker.items():
            node[k] = node.get(k, 0.0) - v
        placed += 1


@pytest.mark.parametrize("per_worker,nodes", [
    ({"CPU": 0.5}, [{"CPU": 2.0}]),
    ({"CPU": 0.3}, [{"CPU": 1.0}, {"CPU": 0.9}]),
    ({"CPU": 4.0, "GPU": 1.0}, [{"CPU": 16.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 8.0}, {"CPU": 64.0}]),
    ({"CPU": 1.0, "GPU": 0.5}, [{"CPU": 2.0}, {"CPU": 3.0, "GPU": 2.0}]),
    ({"CPU": 3.0}, [{"CPU": 2.0}, {"CPU": 2.0}]),  # 4 CPUs in all, but no node holds one worker
])
def test_workers_that_fit_match_placing_them_one_by_one(per_worker, nodes):
    assert workers_that_fit(per_worker, nodes) == _greedy(per_worker, nodes)


def test_shortfall_names_what_is_asked_and_what_the_cluster_has():
    assert shortfall(4, {"CPU": 0.5}, [{"CPU": 2.0}]) is None
    assert shortfall(64, {"CPU": 0.5}, [{"CPU": 2.0}]) == (
        "ray.num_workers=64 Train workers of 0.5 CPU each, but the cluster's 1 node(s) (2 CPU in all) hold 4")
    assert "hold 0" in shortfall(1, {"CPU": 0.5, "GPU": 1.0}, [{"CPU": 2.0}])
    gb = 1024**3  # ray.memory_per_worker: Ray counts memory in bytes, the line in GB
    assert shortfall(3, {"CPU": 0.5, "memory": 8 * gb}, [{"CPU": 2.0, "memory": 20.5 * gb}]) == (
        "ray.num_workers=3 Train workers of 0.5 CPU + 8 GB memory each, but the cluster's 1 node(s) (2 CPU, 20.5 GB "
        "memory in all) hold 2")


def test_a_local_cluster_that_cannot_hold_the_workers_is_an_error_and_a_remote_one_waits(monkeypatch, capsys):
    import ray

    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}},
                                               {"Alive": False, "Resources": {"CPU": 64.0}}])  # a dead node: none
    monkeypatch.setattr(driver, "local_cluster_started", lambda: True)
    driver.check_capacity(4, {"CPU": 0.5})  # fits: nothing said
    assert capsys.readouterr().out == ""
    with pytest.raises(ReidError, match=r"ray.num_workers=5 .* hold 4, and this local Ray cluster cannot grow"):
        driver.check_capacity(5, {"CPU": 0.5})
    with pytest.raises(ReidError, match=r"0.5 CPU \+ 1 GPU each.* hold 0, .*cannot grow: ray.use_gpu=false"):
        driver.check_capacity(1, {"CPU": 0.5, "GPU": 1.0})
    with pytest.raises(ReidError, match=r"hold 0, .*\(ray.gpus_per_worker, ray.memory_per_worker\)"):
        driver.check_capacity(1, {"CPU": 0.5, "memory": 1024**3})  # the node advertises no memory at all here
    monkeypatch.setattr(driver, "local_cluster_started", lambda: False)
    driver.check_capacity(5, {"CPU": 0.5})
    assert "[reid] waiting for resources: ray.num_workers=5" in capsys.readouterr().out
