"""What `reid tune search` / `reid tune ablation` print while trials run: a few lines per trial, not Tune's boxes.

Ray Tune's own console (its default verbosity) draws a box of the configuration when a trial starts, a box of
some 30 metrics when it ends and a status table of every trial every half minute: about 40 lines a trial, 2,500
for a 64-trial sweep. Unless `--verbose`, the runner turns it off (`RunConfig(verbose=0)`) and `TrialLines` prints
instead, besides the trials' own epoch lines:

    [reid] trial 30bb6497 started: loss.triplet_margin=0.484, data.seq_len=2
    [reid] trial 30bb6497 done  epoch 2  loss 11.2186  | val mAP 58.3 R1 25.0 mINP 58.3 (4 queries)
    [reid] trial 68292f12 stopped early by ASHA  epoch 2 of 8  loss 3.3766  | val mAP 58.3 R1 25.0 mINP 58.3 ...
    [reid] trial 54d01750 restarts (retry 1 of 2): ValueError: ...
    [reid] trial 54d01750 failed  epoch 1  loss 6.2494  (ValueError: ...; error: /runs/x/run_trial_54d01750/error.txt)
    [reid] trials after 12 min: 2 running, 5 done, 1 failed, 16 pending

the last at most every STATUS_PERIOD_S while trials remain.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

from reid.ray_runtime import memory_kill
from reid.training.worker import validation_part

STATUS_PERIOD_S = 300.0


def format_trial_line(trial_id: str, result: dict[str, Any], status: str, of_epochs: int | None = None) -> str:
    """One line per finished trial: the same numbers as the epoch line's validation part (`epoch 2 of 8` with
    `of_epochs`)."""
    line = f"[reid] trial {trial_id} {status}"
    if "epoch" in result:
        line += f"  epoch {result['epoch']}" + (f" of {of_epochs}" if of_epochs else "")
    if "loss" in result:
        line += f"  loss {result['loss']:.4f}"
    line += validation_part(result)
    if "test/mAP" in result:
        line += f"  | test mAP {result['test/mAP']:.1f}"
    return line


def plural(n: int, noun: str) -> str:
    """`1 trial`, `2 trials`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_params(params: dict[str, Any]) -> str:
    """`k=v, ...` of a trial's sampled (or gridded) values, floats to 3 significant digits."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def format_status_line(statuses: list[str], elapsed_s: float) -> str:
    """`[reid] trials after N min: 2 running, 5 done, 1 failed, 16 pending` (Tune's status names, in words)."""
    counts = Counter(statuses)
    words = {"RUNNING": "running", "TERMINATED": "done", "ERROR": "failed", "PENDING": "pending",
             "PAUSED": "paused"}
    parts = [f"{counts[s]} {w}" for s, w in words.items() if counts[s]]
    return f"[reid] trials after {elapsed_s / 60:.0f} min: " + ", ".join(parts)


def error_location(trial: Any) -> str | None:
    """Where a failed trial's error.txt is kept: in the experiment's storage (a folder, or a URI such as
    s3://bucket/...), not the driver's staging copy under /tmp/ray that `trial.error_file` names."""
    try:
        name = trial.run_metadata.error_filename
        if not name:
            return None
        path = f"{trial.path.rstrip('/')}/{name}"
        scheme = trial.storage.storage_filesystem.type_name
    except AttributeError:
        return getattr(trial, "error_file", None)
    return path if scheme == "local" else f"{scheme}://{path}"


REASON_CHARS = 200
_PROCESS_DIED = re.compile(r"worker process has died\. Worker exit type: (\w+) Worker exit detail: (.*?)\.(?: |$)")


def failure_reason(error_text: str | None) -> str | None:
    """One line on a trial's latest failure, from its error.txt (`Failure # N (occurred at ...)` blocks): the
    exception's last line; for a worker Ray's memory monitor killed, `Ray's memory monitor killed 1 worker(s): the
    node was at 22.63GB of 23.54GB` (tune/oom.py); for a trial process that died, Ray's first sentence on it."""
    if not error_text or not error_text.strip():
        return None
    latest = error_text.rsplit("Failure # ", 1)[-1]
    oom = memory_kill(latest)
    if oom:
        return oom
    died = _PROCESS_DIED.search(latest)
    if died:  # Ray's RayActorError: the message's first sentence, without its list of common causes
        return f"the trial's process died ({died.group(1)}: {died.group(2)})"
    lines = [line.strip() for line in latest.splitlines()[1:] if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    return last if len(last) <= REASON_CHARS else last[:REASON_CHARS - 3] + "..."


def _latest_failure(trial: Any) -> str | None:
    """`failure_reason` of the trial's error.txt as Tune just wrote it (the driver's copy, before any upload)."""
    try:
        with open(trial.error_file) as f:
            return failure_reason(f.read())
    except (OSError, TypeError, AttributeError):
        return None


def stopped_early(result: dict[str, Any], epochs: int | None) -> bool:
    """A trial that completed before the sweep's `epochs` (a trial reaches its last epoch itself: tune/asha.py;
    only the scheduler ends one before)."""
    epoch = result.get("epoch")
    return bool(epochs) and isinstance(epoch, int | float) and epoch < epochs


def trial_line_callback(epochs: int | None = None):
    """A Ray Tune callback that prints the lines of the module docstring. `epochs`: what every trial trains when
    no scheduler stops it (a sweep's train.epochs; None: no such line)."""
    from ray.tune import Callback

    class TrialLines(Callback):
        def __init__(self) -> None:
            self.epochs = epochs
            self.setup()

        def setup(self, **info: Any) -> None:  # each fit, a resumed one too (Tune restores its callbacks pickled)
            self.started = time.monotonic()
            self.last_status = self.started

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            params = format_params(getattr(trial, "evaluated_params", None) or {})
            print(f"[reid] trial {trial.trial_id} started" + (f": {params}" if params else ""), flush=True)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            line = (format_trial_line(trial.trial_id, result, "stopped early by ASHA", of_epochs=self.epochs)
                    if stopped_early(result, self.epochs) else format_trial_line(trial.trial_id, result, "done"))
            print(line, flush=True)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            reason = _latest_failure(trial)
            failures = getattr(getattr(trial, "run_metadata", None), "num_failures", None)
            limit = getattr(trial, "max_failures", None)
            retry = f" (retry {failures} of {limit})" if failures and limit and limit > 0 else ""
            print(f"[reid] trial {trial.trial_id} restarts{retry}"
                  + (f": {reason}" if reason else ""), flush=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            line = format_trial_line(trial.trial_id, trial.last_result or {}, "failed")
            reason, error_file = _latest_failure(trial), error_location(trial)
            notes = [n for n in (reason, f"error: {error_file}" if error_file else None) if n]
            print(line + (f"  ({'; '.join(notes)})" if notes else ""), flush=True)

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            now = time.monotonic()
            if now - self.last_status < STATUS_PERIOD_S:
                return
            self.last_status = now
            statuses = [str(t.status) for t in trials]
            if any(s in ("RUNNING", "PENDING", "PAUSED") for s in statuses):
                print(format_status_line(statuses, now - self.started), flush=True)

    return TrialLines()
