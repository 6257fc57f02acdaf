"""An audit log of what a Ray Train run reported, and the check that nothing was reported twice or lost.

`ReportAuditLog(path)` is a Ray Train `UserCallback` (it runs in the Train controller, on the driver's node): it
appends one JSON line per `ray.train.report` (rank 0's epoch and the checkpoint path) and one per worker-group
failure. `reid train --audit-log PATH` turns it on (`reid.training.api.train(cfg, callbacks=[ReportAuditLog(path)])`
in code); `check_reports(read_events(PATH), epochs)` lists what is wrong with a finished run's log.

Why reports can repeat: after a hard worker failure Ray Train restarts the worker group from the latest checkpoint
the controller has registered, and reports still queued in the dead process are lost, so the restored checkpoint
may be one epoch older than the last epoch a worker finished (shared/notes/ray-2.60-facts.md section 7). The epochs
after that checkpoint are then trained again and reported again. That is a rollback, not a duplicate.

What "nothing reported twice or lost" means here (`folded_epochs` / `check_reports`):
- fold the log in order: a report of epoch e discards every earlier report of an epoch >= e (the rollback);
- the folded history must be exactly 1, 2, ..., E: every epoch once, in order (nothing lost, nothing twice);
- a repeated epoch in the raw log is allowed only after a failure event between its two reports (a repeat
  without an intervening restart is a real duplicate);
- every epoch is reported at most 1 + (number of failures) times.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray.train import UserCallback


class ReportAuditLog(UserCallback):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"time": time.time(), **record}) + "\n")

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        import ray

        first = metrics[0] if metrics else {}
        # node: where the controller runs (the driver's node, where Ray Train pins it): the rehearsal checks it
        self._write({"event": "report", "epoch": first.get("epoch"), "workers": len(metrics),
                     "checkpoint": getattr(checkpoint, "path", None),
                     "node": ray.get_runtime_context().get_node_id()})

    def after_exception(self, run_context, worker_exceptions: dict[int, Exception]) -> None:
        self._write({"event": "failure",
                     "errors": {str(rank): f"{type(exc).__name__}: {exc}"[:500]
                                for rank, exc in (worker_exceptions or {}).items()}})


def read_events(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def folded_epochs(events: list[dict[str, Any]]) -> list[int]:
    """The reported epochs after undoing rollbacks: a report of epoch e drops every earlier report of epoch >= e."""
    out: list[int] = []
    for e in events:
        if e["event"] != "report":
            continue
        epoch = int(e["epoch"])
        while out and out[-1] >= epoch:
            out.pop()
        out.append(epoch)
    return out


def check_reports(events: list[dict[str, Any]], epochs: int) -> list[str]:
    """Problems with a run's report log (empty when every epoch 1..epochs was reported once, up to rollbacks)."""
    problems = []
    folded = folded_epochs(events)
    if folded != list(range(1, epochs + 1)):
        problems.append(f"folded history {folded} is not 1..{epochs}")
    failures = sum(1 for e in events if e["event"] == "failure")
    last_seen: dict[int, int] = {}
    counts: dict[int, int] = {}
    failures_so_far = 0
    for e in events:
        if e["event"] == "failure":
            failures_so_far += 1
            continue
        epoch = int(e["epoch"])
        counts[epoch] = counts.get(epoch, 0) + 1
        if epoch in last_seen and last_seen[epoch] == failures_so_far:
            problems.append(f"epoch {epoch} reported twice without a restart in between")
        last_seen[epoch] = failures_so_far
    for epoch, n in counts.items():
        if n > 1 + failures:
            problems.append(f"epoch {epoch} reported {n} times with {failures} failure(s)")
    return problems
