"""Starting a run whose directory already holds checkpoints continues it (docs/training.md, "Runs, checkpoints,
resume"). That is right only with the config those checkpoints were trained with: the same command started again
after an interruption. The same run name with another config (`reid train baseline optim.lr=0.1` after
`reid train baseline`: the name is `<method>-<variant>-<dataset>-s<seed>`, no learning rate in it) would otherwise
continue the old weights under the new settings, or, for a finished run, train nothing, and overwrite its
config.yaml with settings it was never trained with.

`check_same_run` compares the run's stored config.yaml with the new config, key by key, leaving out the keys that
say where and how a run executes rather than what it learns (`EXECUTION_KEYS`: Ray resources, evaluation, the
decoding actors, checkpoint cadence). Without `allow_changed` a difference is a `ReidError` naming the keys;
`reid train --resume RUN key=value` passes `allow_changed` (the user asked to continue that run with the change)
and gets the list back to print.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from reid import storage
from reid.config import ExperimentConfig
from reid.config.loader import PATH_KEYS
from reid.errors import ReidError
from reid.models.state_file import STATE_FILE

# where and how a run executes, not what it learns: these may differ between attempts of one run
EXECUTION_KEYS: tuple[str, ...] = (
    "name", "ray.", "eval.", "data.decode_workers", "data.decode_cpus", "data.decode_timeout_s", "data.jpeg_decode",
    "data.max_errored_fraction", "data.frame_cache_gb", "train.checkpoint_every", "train.keep_checkpoints",
    "train.eval_every", "train.inject_fault", "train.channels_last", "train.compile",
)
# what marks a run with something to continue: Ray Train's checkpoint index, or a checkpoint in an in-process run's
# folder of them (`LocalSession` creates the folder as it starts: a run stopped in its first epoch leaves it empty)
RAY_CHECKPOINT_INDEX = "checkpoint_manager_snapshot.json"
LOCAL_CHECKPOINTS = "checkpoints"
SHOWN = 6  # differing keys named in the error


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def is_execution_key(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in EXECUTION_KEYS)


def same_value(key: str, a: Any, b: Any) -> bool:
    """Equal values; for a local path of `PATH_KEYS`, the same file or folder: a relative path (what runs recorded
    before config.yaml held absolute ones) as it resolves in the current directory, symbolic links followed (Tune
    experiments recorded them resolved until 2026-12-07)."""
    if a == b:
        return True
    local = isinstance(a, str) and isinstance(b, str) and "://" not in a and "://" not in b
    return key in PATH_KEYS and local and os.path.realpath(os.path.expanduser(a)) == os.path.realpath(
        os.path.expanduser(b))


def learned_differences(stored: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, stored value, new value) for every key outside `EXECUTION_KEYS` whose value differs (`same_value`); a
    key only one side has shows `None` on the other. Sorted by key."""
    old_flat, new_flat = flatten(stored), flatten(new)
    keys = sorted(old_flat.keys() | new_flat.keys())
    return [(k, old_flat.get(k), new_flat.get(k)) for k in keys
            if not is_execution_key(k) and not same_value(k, old_flat.get(k), new_flat.get(k))]


def has_checkpoints(location: Path | str) -> bool:
    """Whether the run at `location` (a local directory or a URI) holds a checkpoint that a start would resume:
    Ray Train's index of them, or an `epoch_*` folder with its state file in `checkpoints/`. A run that stopped
    before its first checkpoint (a refused batch, a NaN or Ctrl-C in epoch 1) has nothing to continue, and the
    same command with a corrected config starts it again."""
    if storage.exists(storage.join(location, RAY_CHECKPOINT_INDEX)):
        return True
    folder = storage.join(location, LOCAL_CHECKPOINTS)
    return any(name.startswith("epoch_") and storage.is_file(storage.join(folder, name, STATE_FILE))
               for name in storage.list_dir(folder))


def stored_config(location: Path | str) -> dict[str, Any] | None:
    """The run's config.yaml as the current schema reads it (defaults filled for keys added since it was written);
    as written when the schema no longer accepts it; None when there is none."""
    path = storage.join(location, "config.yaml")
    if not storage.is_file(path):
        return None
    try:
        raw = yaml.safe_load(storage.read_text(path))
    except yaml.YAMLError as exc:
        raise ReidError(f"{path} is not readable YAML ({exc}); move the run away or start one under another name "
                        f"(name=NEW)") from None
    if not isinstance(raw, dict):
        return None
    try:
        return ExperimentConfig.model_validate(raw).model_dump(mode="json")
    except ValidationError:
        return raw


def _show(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value)


def describe(differences: list[tuple[str, Any, Any]]) -> str:
    """`optim.lr: 0.0003 -> 0.1; train.epochs: 10 -> 3` (the first `SHOWN`, then how many more)."""
    shown = "; ".join(f"{k}: {_show(a)} -> {_show(b)}" for k, a, b in differences[:SHOWN])
    more = len(differences) - SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def check_same_run(cfg: ExperimentConfig, location: Path | str, *, allow_changed: bool = False,
                   ) -> list[tuple[str, Any, Any]]:
    """Refuse to continue the run at `location` with a config that learns differently from the one its checkpoints
    were trained with. Returns the differences (empty when there is nothing to continue or nothing differs); raises
    `ReidError` when there are some and `allow_changed` is False."""
    if not has_checkpoints(location):
        return []  # nothing to continue: a new run, or one that stopped before its first checkpoint
    stored = stored_config(location)
    if stored is None:
        return []
    differences = learned_differences(stored, cfg.model_dump(mode="json"))
    if differences and not allow_changed:
        raise ReidError(
            f"{location} holds a run trained with another config ({describe(differences)}); starting it again "
            f"would continue those checkpoints with the new settings. Continue it as it was with `reid train "
            f"--resume {location}` (key=value after it changes a key on purpose), start a new run beside it with "
            f"name=NEW, or move it away")
    return differences
