"""A trial that Ray's memory monitor kills fails that trial, not the whole sweep.

When a node runs low on memory, Ray's memory monitor kills a worker, and the trial actor's pending task raises
`ray.exceptions.OutOfMemoryError`. Ray Tune 2.60's actor manager only knows `RayActorError` (the actor died: a
trial failure, retried up to `FailureConfig.max_failures` from the trial's last checkpoint) and `RayTaskError` (the
task raised); anything else ends `Tuner.fit()` with `RuntimeError("Caught unexpected exception: ...")`
(ray/air/execution/_internal/actor_manager.py, `_actor_task_failed`). Measured on this 2-core, 24 GB machine: 3
in-process ResNet-50 trials at 256x128 took 8.9, 8.1 and 4.0 GB; the monitor killed one and the sweep of 3 trials
stopped after a minute, the other two with it.

`install()` hands such an error to Tune as what it is, an actor that died (`TrialOutOfMemory`, a
`RayActorError` that keeps Ray's message), so the trial is retried or marked failed with the message in its
error.txt, and the other trials go on (tune/console.py prints why: `failure_reason`).
"""

from __future__ import annotations

from ray.exceptions import OutOfMemoryError, RayActorError


class TrialOutOfMemory(RayActorError, OutOfMemoryError):
    """Ray's OutOfMemoryError of a trial's task, as the actor death it is; str() is Ray's message."""

    def __init__(self, message: str) -> None:
        RayActorError.__init__(self, error_msg=message)
        self.message = message

    def __reduce__(self):  # Tune pickles a trial's error (error.pkl); RayActorError keeps no args to rebuild from
        return (type(self), (self.message,))


def install() -> None:
    """Patch Ray Tune's actor manager once per process (module docstring)."""
    from ray.air.execution._internal.actor_manager import RayActorManager

    original = RayActorManager._actor_task_failed
    if getattr(original, "reid_oom", False):
        return

    def _actor_task_failed(self, tracked_actor_task, exception: Exception):
        if isinstance(exception, OutOfMemoryError) and not isinstance(exception, RayActorError):
            exception = TrialOutOfMemory(str(exception))
        return original(self, tracked_actor_task, exception)

    _actor_task_failed.reid_oom = True  # type: ignore[attr-defined]
    RayActorManager._actor_task_failed = _actor_task_failed

