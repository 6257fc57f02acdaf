"""What a Tune experiment was started with, so that `--resume` continues it only as it started.

Tune restores a resumed experiment's search space, grid, searcher and scheduler from its own files, but the
trainable, and with it the config every trial trains with, comes from the resuming command. Resumed with other
settings (`reid tune search ... train.epochs=20 --resume` of a sweep started with `train.epochs=40`), the trials
not yet started would train with the new config, ASHA would still stop at the old epochs, and the trials that had
checkpoints would each fail on their run's own check (reid.training.same_run) after Ray had started: one table
mixing two configs, or a sweep of errored trials.

A new experiment writes `reid_experiment.json` in its directory before Ray starts: the resolved config and what
defines the experiment besides it (the search space and searcher seed of a sweep; the rows, seeds, dataset, size
and epochs of an ablation grid). `--resume` compares the command's own with it first and refuses, naming the keys,
when they differ in anything but where and how trials execute (`EXECUTION_KEYS` of reid.training.same_run: Ray
resources, evaluation, decoding actors, checkpoint cadence). An experiment started before this file existed is
continued unchecked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reid import storage
from reid.errors import ReidError
from reid.training.same_run import describe, flatten, learned_differences

RECORD = "reid_experiment.json"


def experiment_record(kind: str, config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """`kind` ("search" / "ablation"), the resolved config (a JSON dump, absolute paths) and the experiment's other
    settings, named as the user knows them ({"--space": "baseline", "space optim.lr": "loguniform(...)", ...})."""
    return {"kind": kind, "config": config, "settings": settings}


def write_record(path: Path | str, record: dict[str, Any]) -> None:
    storage.write_text(storage.join(path, RECORD), json.dumps(record, indent=2, sort_keys=True))


def read_record(path: Path | str) -> dict[str, Any] | None:
    """The record of the experiment at `path`; None when it has none (started before records) or it is unreadable."""
    location = storage.join(path, RECORD)
    if not storage.is_file(location):
        return None
    try:
        record = json.loads(storage.read_text(location))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("config"), dict) else None


def record_differences(stored: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, stored, new) for every learned config key and every setting that differs: settings first, then the
    config keys, each sorted."""
    old_settings = flatten(stored.get("settings") or {})
    new_settings = flatten(new.get("settings") or {})
    settings = [(k, old_settings.get(k), new_settings.get(k)) for k in sorted(old_settings.keys() | new_settings.keys())
                if old_settings.get(k) != new_settings.get(k)]
    kind = [("kind", stored.get("kind"), new.get("kind"))] if stored.get("kind") != new.get("kind") else []
    return kind + settings + learned_differences(stored["config"], new["config"])


def check_record(path: Path | str, record: dict[str, Any]) -> None:
    """Refuse to resume the experiment at `path` with other settings than it started with (module docstring)."""
    stored = read_record(path)
    if stored is None:
        print(f"[reid] note: the experiment at {path} has no readable {RECORD} (started by an earlier reid?): its "
              f"settings are not compared with this command's", flush=True)
        return
    differences = record_differences(stored, record)
    if differences:
        raise ReidError(f"the experiment at {path} was started with other settings ({describe(differences)}); "
                        f"--resume continues an experiment as it started: give its settings again (nothing was run), "
                        f"or another --name for a new one")
