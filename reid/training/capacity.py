"""Whether a Ray cluster can ever hold a fit's Train workers, checked before the fit starts.

Ray Train V2 asks for `ray.num_workers` bundles of `resources_per_worker` and, when the cluster cannot place them,
times the start out after RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (120 s here) and retries without end: on the
console nothing at all (`reid train ray.num_workers=64` on a 2-core machine waited silently until it was killed).
A cluster an autoscaler may grow can be right to wait; a local cluster that `reid` started itself never grows, so
there the request is an error at once, and elsewhere the driver says what it waits for.

Each worker's bundle must fit on one node, so the workers a node can hold is the floor of its resources over the
bundle's, taken over every resource the bundle asks for, and the cluster holds the sum over its nodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

EPS = 1e-9  # Ray keeps fractional resources in units of 1e-4: 0.5 * 4 must fit in 2.0


def workers_that_fit(per_worker: Mapping[str, float], nodes: Sequence[Mapping[str, float]]) -> int:
    """How many bundles `per_worker` ({"CPU": 0.5, "GPU": 1}) the `nodes` (each node's total resources) hold at
    once, each bundle on one node. A bundle asks for some CPU at least (`ray.cpus_per_worker` > 0)."""
    asked = {k: v for k, v in per_worker.items() if v > 0}
    return sum(min(math.floor(node.get(k, 0.0) / v + EPS) for k, v in asked.items()) for node in nodes)


GB = 1024**3


def amount(resource: str, value: float) -> str:
    """`0.5 CPU`, `1 GPU`, `8 GB memory` (Ray counts memory in bytes)."""
    return f"{value / GB:.3g} GB {resource}" if resource == "memory" else f"{value:g} {resource}"


def describe_bundle(per_worker: Mapping[str, float]) -> str:
    """{"CPU": 0.5, "GPU": 1.0} -> "0.5 CPU + 1 GPU"."""
    return " + ".join(amount(k, v) for k, v in per_worker.items() if v > 0)


def shortfall(num_workers: int, per_worker: Mapping[str, float], nodes: Sequence[Mapping[str, float]],
              asked: str | None = None) -> str | None:
    """None when the nodes hold `num_workers` bundles; otherwise what is asked (`asked`, default
    `ray.num_workers=N Train workers`) against what the cluster has."""
    fit = workers_that_fit(per_worker, nodes)
    if fit >= num_workers:
        return None
    totals = {k: sum(node.get(k, 0.0) for node in nodes) for k in per_worker if per_worker[k] > 0}
    have = ", ".join(amount(k, v) for k, v in totals.items())
    asked = asked or f"ray.num_workers={num_workers} Train workers"
    return (f"{asked} of {describe_bundle(per_worker)} each, but the cluster's {len(nodes)} node(s) ({have} in all) "
            f"hold {fit}")
