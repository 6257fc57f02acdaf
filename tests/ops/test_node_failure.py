"""The multi-node rehearsal on this machine (issue 18): a head and two worker nodes as separate raylets
(`ray.cluster_utils.Cluster`), token auth on, each node marked by a custom resource as on the shipped cluster specs:
the head advertises the `reid_driver` slots (jobs/submit.py) and hosts this test's driver, one worker is "GPU-like"
(`gpu_like`), the other a "spot CPU" node (`spot_cpu`):

1. the Train workers start on the GPU-like node, which is killed after epoch 1 (no graceful drain, mid-run): the
   FailureConfig (`ray.max_failures=2`) restarts the worker group on the spot node from the last checkpoint, the run
   finishes, and its final weights are those of the uninterrupted run of the same configuration (the ops tests'
   reference job, conftest `reference_job`, on a single-node head: where the workers ran changes nothing);
2. every report passes through a Train controller on the head (the driver's node: Ray Train pins it there), never
   on a worker node whose loss would end the run.

Blocker actors fill the CPUs of the nodes that must not take the Train workers, so placement is decided here and
not by chance.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from jobs.audit import ReportAuditLog, check_reports, read_events
from jobs.local_cluster import free_port, kill_processes_mentioning
from jobs.submit import DRIVER_RESOURCE
from reid.training.api import train
from tests.ops.helpers import (
    ATTEMPTS,
    assert_same_weights,
    final_state,
    short_tmpdir,
    tiny_config,
    token_mode,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 3  # the reference job's (tests/ops/helpers.SHARED_RUN)
NODE_MEMORY = 150 * 1024**2


@ray.remote(num_cpus=2)
class Blocker:
    def ready(self) -> bool:
        return True


def _blocker_on(node_id: str):
    blocker = Blocker.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()
    ray.get(blocker.ready.remote(), timeout=120)
    return blocker


@pytest.fixture(scope="module")
def cluster_of_three():
    from ray.cluster_utils import Cluster

    temp = short_tmpdir("reid-node-")
    with token_mode():  # the nodes inherit RAY_AUTH_MODE=token: token auth as everywhere else
        cluster = None
        try:
            for attempt in range(ATTEMPTS):
                cluster = None
                try:
                    cluster = Cluster(initialize_head=True, head_node_args={
                        "num_cpus": 2, "resources": {DRIVER_RESOURCE: 100}, "object_store_memory": NODE_MEMORY,
                        "temp_dir": str(temp), "include_dashboard": False, "dashboard_port": free_port(),
                        "dashboard_agent_listen_port": free_port()})  # never another cluster's defaults
                    gpu_like = cluster.add_node(num_cpus=2, resources={"gpu_like": 1}, object_store_memory=NODE_MEMORY)
                    spot = cluster.add_node(num_cpus=2, resources={"spot_cpu": 1}, object_store_memory=NODE_MEMORY)
                    break
                except Exception:
                    if cluster is not None:
                        cluster.shutdown()
                    kill_processes_mentioning(str(temp))
                    if attempt == ATTEMPTS - 1:
                        raise
                    time.sleep(10)
            ray.init(address=cluster.address, log_to_driver=False)
            yield cluster, gpu_like, spot
        finally:
            ray.shutdown()
            if cluster is not None:
                cluster.shutdown()
            kill_processes_mentioning(str(temp))
            shutil.rmtree(temp, ignore_errors=True)


def _node_of(resource: str) -> str:
    return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and resource in n["Resources"])


@pytest.mark.timeout(1200)
def test_a_killed_gpu_like_node_restarts_the_run_on_the_spot_node_with_the_same_weights(cluster_of_three, ops_data,
                                                                                          reference_job, tmp_path):
    cluster, gpu_like, spot = cluster_of_three
    head_id = ray.get_runtime_context().get_node_id()
    assert _node_of(DRIVER_RESOURCE) == head_id  # this driver runs on the head, as a pinned job's would
    head_blocker = _blocker_on(head_id)
    spot_blocker = _blocker_on(_node_of("spot_cpu"))  # the Train workers start on the GPU-like node

    assert reference_job.status == "SUCCEEDED", reference_job.logs[-4000:]
    cfg = tiny_config(ops_data, tmp_path, "rehearsal-node-loss", "ray.max_failures=2")
    log = tmp_path / "reports.jsonl"
    removed: dict[str, float] = {}

    def kill_gpu_like_node_after_epoch_one() -> None:
        deadline = time.monotonic() + 600
        while not any(e["event"] == "report" for e in read_events(log)):
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        ray.kill(spot_blocker)  # room on the spot node for the restarted group
        cluster.remove_node(gpu_like, allow_graceful=False)
        removed["at"] = time.time()

    chaos = threading.Thread(target=kill_gpu_like_node_after_epoch_one, daemon=True)
    chaos.start()
    result = train(cfg, callbacks=[ReportAuditLog(log)])  # Ray Train's fit needs the main thread
    chaos.join(60)
    ray.kill(head_blocker)

    assert "at" in removed, "the GPU-like node was never removed"
    events = read_events(log)
    print("report log:", [(e["event"], e.get("epoch"), e.get("node", "")[:8]) for e in events])  # -rP / -s
    failures = [e for e in events if e["event"] == "failure"]
    assert failures and failures[0]["time"] >= removed["at"] - 1, events
    assert check_reports(events, EPOCHS) == [], events
    reports = [e for e in events if e["event"] == "report"]
    assert {e["node"] for e in reports} == {head_id}  # the controller never left the head
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert alive == {head_id, _node_of("spot_cpu")}  # the run finished on what was left
    state, ref_state = final_state(result.run_dir), final_state(reference_job.run_dir)
    assert state["next_epoch"] == ref_state["next_epoch"] == EPOCHS  # 0-based: the epoch after the last
    assert_same_weights(ref_state["model"], state["model"])
