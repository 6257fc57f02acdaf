"""A worker node removed mid-run, on a real two-node cluster (`ray.cluster_utils.Cluster`) on this machine.

Layout: the head (2 CPUs) holds the driver, the Train controller (pinned to the driver's node by Ray Train) and,
at first, a 2-CPU blocker actor, so the Train workers and the decoding actor have to start on the second node.
After epoch 1 the blocker goes and the second node is killed (no graceful drain): the FailureConfig
(`ray.max_failures=2`) restarts the worker group on what is left, from the last checkpoint, and the run finishes.
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
from reid.training.api import train
from tests.ops.helpers import ATTEMPTS, final_state, short_tmpdir, tiny_config, token_mode

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@ray.remote(num_cpus=2)
class Blocker:
    def ready(self) -> bool:
        return True


@pytest.fixture
def two_nodes():
    from ray.cluster_utils import Cluster

    temp = short_tmpdir("reid-node-")
    with token_mode():  # the nodes inherit RAY_AUTH_MODE=token: token auth as everywhere else
        cluster = None
        try:
            for attempt in range(ATTEMPTS):
                cluster = None
                try:
                    cluster = Cluster(initialize_head=True, head_node_args={
                        "num_cpus": 2, "object_store_memory": 150 * 1024**2, "temp_dir": str(temp),
                        "include_dashboard": False, "dashboard_port": free_port(),
                        "dashboard_agent_listen_port": free_port()})  # never another cluster's defaults
                    worker = cluster.add_node(num_cpus=2, object_store_memory=150 * 1024**2)
                    break
                except Exception:
                    if cluster is not None:
                        cluster.shutdown()
                    kill_processes_mentioning(str(temp))
                    if attempt == ATTEMPTS - 1:
                        raise
                    time.sleep(10)
            ray.init(address=cluster.address, log_to_driver=False)
            yield cluster, worker
        finally:
            ray.shutdown()
            if cluster is not None:
                cluster.shutdown()
            kill_processes_mentioning(str(temp))
            shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.timeout(900)
def test_removed_worker_node_restarts_the_run_on_the_remaining_node(two_nodes, ops_data, tmp_path):
    cluster, worker = two_nodes
    head_id = ray.get_runtime_context().get_node_id()
    blocker = Blocker.options(scheduling_strategy=NodeAffinitySchedulingStrategy(head_id, soft=False)).remote()
    ray.get(blocker.ready.remote(), timeout=120)

    cfg = tiny_config(ops_data, tmp_path, "node-loss", "ray.max_failures=2")
    log = tmp_path / "reports.jsonl"
    removed: dict[str, float] = {}

    def remove_worker_node_after_epoch_one() -> None:
        deadline = time.monotonic() + 600
        while not any(e["event"] == "report" for e in read_events(log)):
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        ray.kill(blocker)  # room on the head for the restarted group
        cluster.remove_node(worker, allow_graceful=False)
        removed["at"] = time.time()

    chaos = threading.Thread(target=remove_worker_node_after_epoch_one, daemon=True)
    chaos.start()
    result = train(cfg, callbacks=[ReportAuditLog(log)])  # Ray Train's fit needs the main thread
    chaos.join(60)

    assert "at" in removed, "the worker node was never removed"
    events = read_events(log)
    print("report log:", [(e["event"], e.get("epoch")) for e in events])  # shown with -rP / -s
    failures = [e for e in events if e["event"] == "failure"]
    assert failures and failures[0]["time"] >= removed["at"] - 1, events
    assert check_reports(events, 3) == [], events
    alive = [n for n in ray.nodes() if n["Alive"]]
    assert [n["NodeID"] for n in alive] == [head_id]  # the run finished on what was left
    state = final_state(result.run_dir)
    assert state["next_epoch"] == 3
