"""Fault injection for tests of resume and fault tolerance (`train.inject_fault`), off by default.

Format: `<kind>@<epoch>[:<step>][/<rank>]`, epochs and steps 1-based, or several of them separated by commas
(e.g. `stall@2:1/0,kill@3:1/1`: each fires at its own step); kinds:
- `raise`: raise RuntimeError (a Python failure of the worker),
- `kill`:  SIGKILL the worker process (a hard crash: no cleanup, no flush),
- `nan`:   poison that step's inputs so every loss term becomes NaN (exercises the NaN guard),
- `stall`: sleep STALL_S seconds before the step (a hung step: for stopping a job mid-run, watchdogs, alerts).
A fault fires once per run: a marker file in the run directory (`.fault-<fault with / as _>`) records it, so a
retried or resumed run goes on.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from reid.errors import ReidError

_PATTERN = re.compile(r"^(raise|kill|nan|stall)@(\d+)(?::(\d+))?(?:/(\d+))?$")
STALL_S = 300.0


@dataclass(frozen=True)
class Fault:
    kind: str
    epoch: int
    step: int = 1
    rank: int = 0

    @classmethod
    def parse(cls, text: str) -> Fault:
        m = _PATTERN.match(text.strip())
        if not m:
            raise ReidError(f"train.inject_fault '{text}' is not of the form kind@epoch[:step][/rank] "
                            f"with kind raise|kill|nan|stall (e.g. kill@2:1/1)")
        return cls(m.group(1), int(m.group(2)), int(m.group(3) or 1), int(m.group(4) or 0))


class FaultInjector:
    def __init__(self, spec: str | None, run_dir: Path | None, rank: int) -> None:
        texts = [t.strip() for t in spec.split(",")] if spec else []
        self.faults = [(Fault.parse(t), (run_dir / f".fault-{t.replace('/', '_')}") if run_dir else None)
                       for t in texts]
        self.rank = rank

    def _due(self, epoch: int, step: int) -> Fault | None:
        """The fault due at this step on this rank, its marker written; None when none is (or it fired already)."""
        for f, marker in self.faults:
            if (f.epoch, f.step, f.rank) != (epoch, step, self.rank):
                continue
            if marker is not None:
                if marker.exists():
                    continue
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(f"{f.kind} fired at epoch {epoch} step {step} rank {self.rank}\n")
            return f
        return None

    def before_step(self, epoch: int, step: int, batch: dict) -> None:
        """epoch and step 1-based."""
        fault = self._due(epoch, step)
        if fault is None:
            return
        kind = fault.kind
        if kind == "raise":
            raise RuntimeError(f"injected fault: raise at epoch {epoch} step {step} on rank {self.rank}")
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "stall":
            time.sleep(STALL_S)
            return
        batch["frames"] = batch["frames"] * float("nan")
