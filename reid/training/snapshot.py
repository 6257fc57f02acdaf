"""Ray Train's checkpoint index cut short by a full disk: the run resumes from its newest whole checkpoint.

Ray Train 2.60 rewrites `<run>/checkpoint_manager_snapshot.json` in place at every report. On a full disk it was
left empty (0 bytes; `reid train ... ray.num_workers=1` into a 200 MB tmpfs, 2026-12-07), and every later start of
the run failed in the Train controller's constructor (`CheckpointManagerInitializationError: Expecting value: line
1 column 1`, on the console `ActorDiedError: ... TrainController.__init__()`), with the space freed too: the run
could not be resumed at all. `repair` sets such an index aside and names the run's newest whole checkpoint
(`reid.evaluation.run.discovery.newest_checkpoint`, which skips a `state.pt` cut short); the workers resume from it
(`RaySession`), and Ray Train writes a new index at the next report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reid import storage
from reid.errors import ReidError
from reid.evaluation.run.discovery import newest_checkpoint

SNAPSHOT = "checkpoint_manager_snapshot.json"


def repair(run_location: str) -> str | None:
    """None when the run's index is whole or absent; else set it aside and return the newest whole checkpoint
    to resume from (None: there is none, the run starts from scratch). A run in a bucket is an error that says
    what to do: its objects are not renamed here."""
    path = storage.join(run_location, SNAPSHOT)
    if not storage.is_file(path):
        return None
    try:
        json.loads(storage.read_text(path))
        return None
    except ValueError:
        pass
    if storage.is_uri(run_location):
        raise ReidError(f"Ray Train's checkpoint index {path} is cut short (a full disk?) and Ray cannot resume "
                        f"the run from it: move it aside, then start the run again with train.init_from=<its newest "
                        f"whole checkpoint_* folder>, or give the run another name (name=NEW)")
    aside = Path(path).with_name(f"{SNAPSHOT}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    Path(path).rename(aside)
    newest = newest_checkpoint(Path(run_location))
    then = f"resuming from {newest}" if newest else "no whole checkpoint is left: the run starts from scratch"
    print(f"[reid] Ray Train's checkpoint index of this run was cut short (a full disk?): set aside as {aside.name}; "
          f"{then}", flush=True)
    return str(newest) if newest else None
