"""A run directory as the evaluation side reads it: where its config and checkpoints are, which checkpoint is the
chosen one, its per-epoch history. A run may be a local directory or a URI (`s3://bucket/runs/<name>`, read with
`reid.storage`); the training side writes these files (`reid.training.api`).

Layout: `config.yaml`, `metrics.jsonl`, checkpoints (`checkpoints/epoch_NNNN/` in-process; Ray Train's
`checkpoint_<timestamp>/` under Ray), `best/` (in-process) or `summary.json` naming the best checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reid import storage
from reid.errors import ReidError
from reid.models.state_file import STATE_FILE, is_complete

if TYPE_CHECKING:
    from reid.config import ExperimentConfig

log = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"
RUNS_SHOWN = 5  # run directories named when a folder of runs is given where one run is expected


def find_run(path: str | Path) -> tuple[Path | str, Path | str | None]:
    """(run dir with config.yaml, explicit checkpoint or None) for a run directory or a checkpoint directory inside
    one (up to two levels down); local or URI."""
    if storage.is_uri(path):
        location = str(path).rstrip("/")
        for candidate in (location, storage.parent(location), storage.parent(storage.parent(location))):
            if storage.is_file(storage.join(candidate, CONFIG_FILE)):
                return candidate, (location if candidate != location else None)
        raise ReidError(f"{path} is not a run (no {CONFIG_FILE} in it or its parents)")
    path = Path(path)
    for candidate in (path, *path.parents[:2]):
        if (candidate / CONFIG_FILE).is_file():
            return candidate, (path if candidate != path else None)
    runs = runs_below(path)
    if runs:  # a folder of runs (runs/, a sweep's runs/): name them
        shown = ", ".join(str(r) for r in runs[:RUNS_SHOWN]) + (", ..." if len(runs) > RUNS_SHOWN else "")
        raise ReidError(f"{path} is not a run directory but holds {len(runs)} run(s); name one: {shown}")
    raise ReidError(f"{path} is not a run directory (no {CONFIG_FILE} in it or its parents)")


def runs_below(folder: Path) -> list[Path]:
    """Run directories (holding config.yaml) directly inside `folder`, newest first."""
    if not folder.is_dir():
        return []
    runs = [d for d in folder.iterdir() if (d / CONFIG_FILE).is_file()]
    return sorted(runs, key=lambda d: (-(d / CONFIG_FILE).stat().st_mtime, d.name))


def local_config(run_dir: Path | str) -> Path:
    """The run's config.yaml as a local file. A URI run's is copied to one place per run URI under the temporary
    folder (`reid-run-configs-<uid>/<hash of the URI>/config.yaml`, replaced atomically by each copy): evaluating or
    resuming a run stored in a bucket again and again leaves one small file, not a folder per command."""
    if not storage.is_uri(run_dir):
        return Path(run_dir) / CONFIG_FILE
    key = hashlib.sha1(str(run_dir).rstrip("/").encode()).hexdigest()[:20]
    local = Path(tempfile.gettempdir()) / f"reid-run-configs-{getattr(os, 'getuid', lambda: 0)()}" / key / CONFIG_FILE
    storage.write_text(local, storage.read_text(storage.join(run_dir, CONFIG_FILE)))
    return local


def run_config(run_dir: Path | str, config_files: Iterable[str | Path] = (), overrides: Iterable[str] = (), *,
               overridable: bool = True) -> ExperimentConfig:
    """The run's config: its config.yaml, then `config_files` and `overrides` (`reid eval RUN --config F key=value`),
    its dataset checked as `check_relative_dataset` does."""
    from reid.config import build_config

    config_file = local_config(run_dir)
    cfg = build_config(None, [config_file, *config_files], overrides)
    check_relative_dataset(run_dir, config_file, cfg, overridable=overridable)
    return cfg


def check_relative_dataset(run_dir: Path | str, config_file: Path | str, cfg: ExperimentConfig, *,
                           overridable: bool = True) -> None:
    """A run written before config.yaml recorded absolute paths (2026-12-07) may name its dataset relative to the
    directory it was started in. From another directory that names nothing, or, for the synthetic set, a place where
    a new copy would be generated: that is an error naming the key, unless `cfg` (the command) sets the key itself.
    `overridable`: the command takes key=value arguments; else the advice is to edit config.yaml."""
    stored = (yaml.safe_load(Path(config_file).read_text()) or {}).get("data") or {}
    key, value = ("manifest", stored.get("manifest")) if stored.get("manifest") else ("root", stored.get("root"))
    if not isinstance(value, str) or "://" in value or os.path.isabs(os.path.expanduser(value)):
        return
    if getattr(cfg.data, key) != value:  # set by the command
        return
    target = Path(value) if key == "manifest" else Path(value) / "manifest.parquet"
    if not target.is_file():
        fix = (f"add data.{key}=<its absolute path>" if overridable
               else f"set data.{key} in {config_file} to its absolute path")
        raise ReidError(f"{run_dir}'s config.yaml names data.{key}={value}, relative to the directory the run was "
                        f"started in, and there is no {target.resolve()} here: run this from that directory or {fix}")


def read_history(run_dir: Path | str) -> list[dict[str, Any]]:
    """Per-epoch metrics from `metrics.jsonl` (a local run directory or a URI); an epoch repeated after a restore
    keeps its last report."""
    path = storage.join(run_dir, "metrics.jsonl")
    if not storage.is_file(path):
        return []
    by_epoch = {}
    for line in storage.read_text(path).splitlines():
        row = json.loads(line)
        by_epoch[int(row["epoch"])] = row
    return [by_epoch[e] for e in sorted(by_epoch)]


def latest_checkpoint(run_dir: Path | str) -> Path | str | None:
    """Best checkpoint of a finished run if recorded, else the newest checkpoint directory found. For a run stored
    under a URI: the checkpoint's URI (see `local_checkpoint`, which downloads it)."""
    if storage.is_uri(run_dir):
        return _latest_uri_checkpoint(str(run_dir))
    run_dir = Path(run_dir)
    summary = run_dir / "summary.json"
    best = json.loads(summary.read_text()).get("best_checkpoint") if summary.exists() else None
    if best:
        # summary.json records the path where the run was written; a run moved or copied (another machine, another
        # folder) has its own copy of that checkpoint: the same name inside this run directory
        own = run_dir.resolve() / Path(best).name
        if is_complete(own):
            return own
        if is_complete(best):
            log.warning("%s's best checkpoint is read from %s, where the run was written (this directory has no "
                        "whole copy of it: a moved or copied run)", run_dir, best)
            return Path(best)
    return newest_checkpoint(run_dir)


def _latest_uri_checkpoint(run_dir: str) -> str | None:
    summary = storage.join(run_dir, "summary.json")
    if storage.is_file(summary):
        best = json.loads(storage.read_text(summary)).get("best_checkpoint")
        own = storage.join(run_dir, storage.name(best)) if best else None  # as for a local run: its own copy first
        if own and storage.is_file(storage.join(own, STATE_FILE)):
            return own
        if best and storage.is_file(storage.join(best, STATE_FILE)):
            return best
    # an in-process run copied into a bucket: its best/ (the local layout's choice), else its newest epoch
    if storage.is_file(storage.join(run_dir, "best", STATE_FILE)):
        return storage.join(run_dir, "best")
    # Ray's checkpoint_<timestamp> names sort by time; an upload cut short has no state.pt (written last: atomic)
    found = [storage.join(run_dir, n) for n in storage.list_dir(run_dir) if n.startswith("checkpoint_")]
    found += [storage.join(run_dir, "checkpoints", n) for n in storage.list_dir(storage.join(run_dir, "checkpoints"))
              if n.startswith("epoch_")]
    whole = [c for c in found if storage.is_file(storage.join(c, STATE_FILE))]
    return whole[-1] if whole else None


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """A run's whole checkpoint directories, oldest first: `checkpoints/epoch_NNNN` (in-process) or Ray's
    timestamped `checkpoint_<time>` directories (not `checkpoint_manager_snapshot.json`), leaving out any whose
    `state.pt` was cut short (see `reid.models.state_file.is_complete`)."""
    return [p for p in sorted(run_dir.glob("checkpoints/epoch_*")) + sorted(run_dir.glob("checkpoint_*"))
            if p.is_dir() and not p.name.endswith(".tmp") and is_complete(p)]


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The newest whole checkpoint directory of a run (see `complete_checkpoints`)."""
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


@contextlib.contextmanager
def local_checkpoint(checkpoint: Path | str) -> Iterator[tuple[Path, str]]:
    """(a local checkpoint directory or state file, the checkpoint it is: a path or a URI) for a checkpoint, a run
    directory (its best or newest checkpoint) or either of them named by URI. A checkpoint named by URI is downloaded
    into a temporary directory, removed on exit: read it inside the `with` (each `reid eval s3://...` left its copy,
    130 MB for a ResNet-50 run, in /tmp before)."""
    if not storage.is_uri(checkpoint):
        path = Path(checkpoint)
        if path.is_dir() and not (path / STATE_FILE).exists():
            found = latest_checkpoint(path)
            if found is None:
                raise ReidError(f"no checkpoint found in {path} (expected {STATE_FILE} in a checkpoint directory)")
            path = Path(found)
        yield path, str(path)
        return
    uri = _resolve_checkpoint_uri(str(checkpoint))
    with tempfile.TemporaryDirectory(prefix="reid-ckpt-") as tmp:
        local = Path(tmp) / storage.name(uri)
        if storage.is_file(uri):
            local.write_bytes(storage.read_bytes(uri))
        else:
            storage.copy_dir(uri, local)
        yield local, uri


def _resolve_checkpoint_uri(uri: str) -> str:
    """The URI of the state file or checkpoint directory that `uri` (one of them, or a run) names."""
    if storage.is_file(uri) or storage.is_file(storage.join(uri, STATE_FILE)):
        return uri
    found = latest_checkpoint(uri)
    if found is None:
        raise ReidError(f"no checkpoint found in {uri} (expected {STATE_FILE} in a checkpoint directory)")
    return str(found)
