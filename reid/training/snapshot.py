"""Ray Train's checkpoint index cut short by a full disk: the run resumes from its newest whole checkpoint.

Ray Train 2.60 rewrites `<run>/checkpoint_manager_snapshot.json` in place at every report. On a full disk it was
left empty (0 bytes; `reid train ... ray.num_workers=1` into a 200 MB tmpfs, 2026-12-07), and every later start of
the run failed in the Train controller's constructor (`CheckpointManagerInitializationError: Expecting value: line
1 column 1`, on the console `ActorDiedError: ... TrainController.__init__()`), with the space freed too: the run
could not be resumed at all. `repair` sets such an index aside and names the run's newest whole checkpoint
(`reid.evaluation.run.discovery.newest_checkpoint`, which skips a `state.pt` cut short); the workers resume from it
(`RaySession`), and Ray Train writes a new index at the next report.

A whole index may still leave checkpoint folders out: a worker writes its checkpoint folder, and the Train
controller registers it (and rewrites the index) a little later. A run stopped in between (Ctrl-C, a lost node, a
killed driver; 2026-12-07: Ctrl-C as the tiny set's epoch 4 line appeared, index at epoch 3, folders of epochs 4
and 5 on disk) resumes from the index's latest checkpoint and trains those epochs again into new folders; Ray Train
never deletes the old ones (it keeps `train.keep_checkpoints` of those it registered), 129 MB each for the GPU
recipe, after every such stop. `repair` removes them when the run starts again, before any worker does, and
`tidy` when a fit ends (a worker group restarted within the fit leaves them as well).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from reid import storage
from reid.errors import ReidError
from reid.evaluation.run.discovery import newest_checkpoint
from reid.models.state_file import is_complete

SNAPSHOT = "checkpoint_manager_snapshot.json"
CHECKPOINT_PREFIX = "checkpoint_"  # Ray Train's folders: checkpoint_<time> (the index file is not a folder)


def read_index(run_location: str) -> Any:
    """Ray Train's index of the run, parsed (None: the run has none); ValueError when it is unreadable."""
    path = storage.join(run_location, SNAPSHOT)
    return json.loads(storage.read_text(path)) if storage.is_file(path) else None


def repair(run_location: str) -> str | None:
    """None when the run's index is whole (the folders it does not name removed) or absent; else set it aside and
    return the newest whole checkpoint to resume from (None: there is none, the run starts from scratch). A run in a
    bucket whose index is cut short is an error that says what to do: its objects are not renamed here."""
    try:
        index = read_index(run_location)
    except ValueError:
        pass
    else:
        if index is not None:
            remove_unregistered(run_location, index)
        return None
    path = storage.join(run_location, SNAPSHOT)
    if storage.is_uri(run_location):
        raise ReidError(f"Ray Train's checkpoint index {path} is cut short (a full disk?) and Ray cannot resume "
                        f"the run from it: move it aside, then start the run again with train.init_from=<its newest "
                        f"whole checkpoint_* folder>, or give the run another name (name=NEW)")
    aside = Path(path).with_name(f"{SNAPSHOT}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    Path(path).rename(aside)
    remove_cut_short(Path(run_location))
    newest = newest_checkpoint(Path(run_location))
    then = f"resuming from {newest}" if newest else "no whole checkpoint is left: the run starts from scratch"
    print(f"[reid] Ray Train's checkpoint index of this run was cut short (a full disk?): set aside as {aside.name}; "
          f"{then}", flush=True)
    return str(newest) if newest else None


def registered(index: dict) -> set[str]:
    """The checkpoint folders Ray Train's index names (kept results and the latest)."""
    results = [*index.get("checkpoint_results", []), index.get("latest_checkpoint_result") or {}]
    return {r["checkpoint_dir_name"] for r in results if r.get("checkpoint_dir_name")}


def remove_unregistered(run_location: str, index: Any) -> list[str]:
    """Delete the run's `checkpoint_*` folders that `index` does not name (module docstring); their names. An index
    of another layout than Ray Train 2.60's (no `checkpoint_results`) removes nothing."""
    if not isinstance(index, dict) or not isinstance(index.get("checkpoint_results"), list):
        return []
    known = registered(index)
    stale = [n for n in storage.list_dir(run_location)
             if n.startswith(CHECKPOINT_PREFIX) and n not in known and storage.is_dir(storage.join(run_location, n))]
    for name in stale:
        storage.remove(storage.join(run_location, name))
    if stale:
        print(f"[reid] removed {len(stale)} checkpoint folder(s) that Ray Train never registered (written just before "
              f"a stop or a worker failure; their epochs are trained again): {', '.join(stale)}", flush=True)
    return stale


def tidy(run_location: str) -> list[str]:
    """After a fit: the folders its index does not name (a worker group that failed and restarted within the fit
    leaves them too), removed; nothing when the index is missing or unreadable."""
    try:
        index = read_index(run_location)
    except ValueError:
        return []
    return remove_unregistered(run_location, index) if index is not None else []


def remove_cut_short(run_dir: Path) -> list[str]:
    """With the index unreadable: delete the run's `checkpoint_*` folders without a whole `state.pt` (the copy the
    full disk cut short), which nothing can resume from; their names."""
    cut = sorted(p.name for p in run_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and not is_complete(p))
    for name in cut:
        shutil.rmtree(run_dir / name)
    if cut:
        print(f"[reid] removed {len(cut)} checkpoint folder(s) cut short: {', '.join(cut)}", flush=True)
    return cut
