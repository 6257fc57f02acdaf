"""Python API of training: `train(cfg)` (and `resume_source` for `reid train --resume`); the CLI and Tune call it.

A run lives in `<ray.storage_path>/<run name>/`: `config.yaml` (the resolved config), `metrics.jsonl`,
checkpoints (`checkpoints/epoch_NNNN/` in-process; Ray Train's `checkpoint_<timestamp>/` under Ray),
`best/` (in-process) or `summary.json` naming the best checkpoint, `test.json`, `eval.json`, `report.html`.
`ray.storage_path` may be a URI (s3://, gs://; reid.storage): Ray Train runs store there directly, in-process runs
train in a local scratch directory and upload each epoch (`_train_into_uri`); either way the files training writes
land there and `TrainResult` names the run and its checkpoints by URI.
Evaluation (`evaluate`, run and checkpoint discovery, reports) is the evaluation side's: `reid.evaluation.run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reid import storage
from reid.config import ExperimentConfig, absolute_paths, save_config
from reid.data.records import read_manifest
from reid.data.source import manifest_path as dataset_manifest
from reid.errors import ReidError
from reid.evaluation.run.discovery import local_config, read_history
from reid.evaluation.run.evaluate import TEST_FILE, evaluate, test_document
from reid.models.state_file import init_source
from reid.training.same_run import check_same_run, describe


@dataclass
class TrainResult:
    run_dir: Path | str  # a URI string ("s3://bucket/runs/<name>") when ray.storage_path is one
    history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: Path | str | None = None  # a URI string too under a URI storage path
    best_map: float = -1.0
    final: dict[str, Any] = field(default_factory=dict)
    # the test split, evaluated once at the end with the checkpoint chosen on validation ({} when not evaluated)
    test: dict[str, Any] = field(default_factory=dict)


def manifest_path_for(cfg: ExperimentConfig) -> Path | str:
    """The manifest of `cfg.data` (reid.data.source.manifest_path: a local path or a URI); generates the synthetic
    set on first use."""
    return dataset_manifest(cfg.data)


def resume_source(run_dir: str | Path) -> tuple[str, list[str]]:
    """What `reid train --resume RUN_DIR` builds its config from: a local copy of the run's config.yaml and the
    overrides that point the run back at RUN_DIR (name, storage path). RUN_DIR may be a URI (s3://bucket/runs/<name>):
    Ray Train then finds the run's checkpoints there and resumes from the latest one."""
    config = storage.join(run_dir, "config.yaml")
    if not storage.is_file(config):
        raise ReidError(f"--resume expects a run directory holding config.yaml; not found: {config}")
    if storage.is_uri(run_dir):
        back = [f"name={storage.name(run_dir)}", f"ray.storage_path={storage.parent(run_dir)}"]
        return str(local_config(run_dir)), back
    return config, [f"name={Path(run_dir).name}", f"ray.storage_path={Path(run_dir).resolve().parent}"]


def run_dir_for(cfg: ExperimentConfig) -> Path:
    """The local run directory `<ray.storage_path>/<run name>`; a run stored under a URI has none (`run_location`)."""
    if storage.is_uri(cfg.ray.storage_path):
        raise ReidError(f"ray.storage_path={cfg.ray.storage_path} is a URI: the run has no local directory")
    return Path(cfg.ray.storage_path).resolve() / cfg.run_name()


def run_location(cfg: ExperimentConfig) -> Path | str:
    """Where the run lives: its local directory, or `<ray.storage_path>/<run name>` when that is a URI."""
    if storage.is_uri(cfg.ray.storage_path):
        return storage.join(cfg.ray.storage_path, cfg.run_name())
    return run_dir_for(cfg)


def train(cfg: ExperimentConfig, callbacks: list | None = None, on_epoch=None, *, test: bool = True,
          allow_changed: bool = False) -> TrainResult:
    """Train `cfg`: in-process when `ray.num_workers == 0`, otherwise with Ray Train. Resumes an existing run, if its
    config.yaml learns what `cfg` does (reid.training.same_run; `allow_changed`: `reid train --resume RUN key=value`,
    the differences printed instead).

    callbacks: Ray Train `UserCallback`s (e.g. Tune's `TuneReportCallback`) for Ray runs; on_epoch(metrics,
    checkpoint_dir | None) is called after every epoch of an in-process run (e.g. to `ray.tune.report`), with the
    checkpoint's URI when the run is stored under one.
    An in-process run under a URI `ray.storage_path` trains in a local scratch directory and lands in the URI
    (`_train_into_uri`): the same files as a Ray Train run stored there (config, metrics, summary, checkpoints).
    test: evaluate the test split once at the end with the checkpoint chosen on validation (`_test_at_end`); sweeps,
    which only compare validation scores, and callers that evaluate the test split themselves pass False.
    """
    cfg = absolute_paths(cfg)  # config.yaml names the dataset wherever a later `reid eval RUN` runs from
    if cfg.train.init_from:  # a missing checkpoint is one line now, not a worker's error once the fit started
        init_source(cfg.train.init_from)
    changed = check_same_run(cfg, run_location(cfg), allow_changed=allow_changed)
    if changed:
        print(f"[reid] continuing {run_location(cfg)} with changed keys: {describe(changed)}", flush=True)
    manifest_path = _with_validation_split(cfg, manifest_path_for(cfg))
    if cfg.ray.num_workers == 0:
        if storage.is_uri(cfg.ray.storage_path):
            return _train_into_uri(cfg, manifest_path, on_epoch, test)
        result = _train_local(cfg, manifest_path, run_dir_for(cfg), on_epoch)
        return _test_at_end(cfg, result) if test else result
    from reid.training.driver import fit_ray

    # before training: a run whose driver is stopped (`ray job stop`, a lost node) must be resumable with
    # `reid train --resume RUN_DIR`, which reads this file (RUN_DIR may be a URI: resume_source)
    if "://" not in cfg.ray.storage_path:
        save_config(cfg, run_dir_for(cfg) / "config.yaml")
    else:
        storage.write_text(storage.join(cfg.ray.storage_path, cfg.run_name(), "config.yaml"), _config_yaml(cfg))
    result = fit_ray(cfg, manifest_path, callbacks=callbacks)
    if result.error is not None:
        raise result.error
    if "://" in cfg.ray.storage_path:
        out = _finish_uri_run(cfg, result)
        return _test_at_end(cfg, out) if test else out
    run_dir = Path(result.path)  # local storage: Ray's absolute run directory
    save_config(cfg, run_dir / "config.yaml")
    history = read_history(run_dir) or _metrics_history(result)
    best_ckpt, best_map = None, -1.0
    for checkpoint, metrics in result.best_checkpoints or []:
        if metrics.get("checkpoint_score", -1.0) > best_map:
            best_ckpt, best_map = Path(checkpoint.path), metrics["checkpoint_score"]
    out = TrainResult(run_dir=run_dir, history=history, best_checkpoint=best_ckpt, best_map=best_map,
                      final=dict(result.metrics or {}))
    _write_summary(out)
    return _test_at_end(cfg, out) if test else out


def _with_validation_split(cfg: ExperimentConfig, manifest_path: Path | str) -> Path | str:
    """The manifest the run trains on: `manifest_path` with `data.val_identities` training identities held out as
    the validation split (reid.data.validation), written into the run directory, in the bucket for runs stored
    under a URI (Ray workers on other nodes must read it; the dataset's own bucket may be read-only)."""
    from reid.data.validation import write_validation_manifest

    return write_validation_manifest(manifest_path, cfg.data.val_identities, run_location(cfg))


def _test_at_end(cfg: ExperimentConfig, result: TrainResult, local_copy: Path | None = None) -> TrainResult:
    """Evaluate the test split once, with the checkpoint chosen on validation, and keep it apart from the per-epoch
    validation: `result.test`, `summary.json` ("test") and `test.json` (metrics + per-query AP and first-match rank,
    which the ablation statistics resample), beside the run's other files (in the bucket for a URI run; a checkpoint
    named by URI is downloaded into a temporary directory, removed afterwards, unless `local_copy` of it is given)."""
    import tempfile

    if result.best_checkpoint is None:
        return result
    with tempfile.TemporaryDirectory(prefix="reid-test-") as tmp:
        checkpoint = local_copy or result.best_checkpoint
        if storage.is_uri(checkpoint):
            checkpoint = storage.local_dir(checkpoint, tmp)
        outcome = evaluate(cfg, checkpoint, progress=False)
    doc = test_document(outcome, result.best_checkpoint)
    result.test = doc["metrics"]
    storage.write_text(storage.join(result.run_dir, TEST_FILE), json.dumps(doc))
    _write_summary(result)
    return result


def _config_yaml(cfg: ExperimentConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _finish_uri_run(cfg: ExperimentConfig, result) -> TrainResult:
    """Config and summary of a run whose `ray.storage_path` is a URI (s3://, gs://, ...).

    Ray's `Result.path` has no scheme ("bucket/runs/<name>" for s3://bucket/runs): `Path(result.path)` would be a
    relative directory, so config.yaml and summary.json would land in the job's temporary working directory and the
    checkpoint paths would lose their scheme. They are written through the run's own filesystem
    (`result.filesystem`, pyarrow) next to the checkpoints, and every returned path keeps the scheme.
    """
    import pyarrow.fs

    scheme = cfg.ray.storage_path.split("://", 1)[0]
    fs, root = result.filesystem, str(result.path).rstrip("/")
    fs.create_dir(root, recursive=True)

    def put(name: str, text: str) -> None:
        with fs.open_output_stream(f"{root}/{name}") as stream:
            stream.write(text.encode())

    put("config.yaml", _config_yaml(cfg))
    best_ckpt, best_map = None, -1.0
    for checkpoint, metrics in result.best_checkpoints or []:
        if metrics.get("checkpoint_score", -1.0) > best_map:
            best_ckpt, best_map = f"{scheme}://{checkpoint.path}", metrics["checkpoint_score"]
    # metrics.jsonl: the workers write it only into a local run directory; a resumed run's result holds only the
    # epochs of its own fit, so the rows already in the bucket are kept and an epoch reported again replaces its row
    by_epoch: dict[Any, dict[str, Any]] = {}
    if fs.get_file_info(f"{root}/metrics.jsonl").type == pyarrow.fs.FileType.File:
        with fs.open_input_stream(f"{root}/metrics.jsonl") as stream:
            by_epoch = {row.get("epoch"): row for row in map(json.loads, stream.read().decode().splitlines())}
    # then the reports of the kept checkpoints (a resumed fit's own history may start after them), then the fit's
    for row in [m for _, m in result.best_checkpoints or []] + _metrics_history(result):
        row = {k: v for k, v in row.items() if isinstance(v, int | float | str | bool)}
        by_epoch[row.get("epoch", len(by_epoch))] = row
    history = [by_epoch[k] for k in sorted(by_epoch, key=lambda e: (not isinstance(e, int | float), e))]
    put("metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))
    out = TrainResult(run_dir=f"{scheme}://{root}", history=history, best_checkpoint=best_ckpt,
                      best_map=best_map, final=dict(result.metrics or {}))
    put("summary.json", json.dumps(_summary(out), indent=2))
    return out


def _metrics_history(result) -> list[dict[str, Any]]:
    df = getattr(result, "metrics_dataframe", None)
    return df.to_dict("records") if df is not None else [dict(result.metrics or {})]


def _train_into_uri(cfg: ExperimentConfig, manifest_path: Path | str, on_epoch, test: bool) -> TrainResult:
    """An in-process run whose `ray.storage_path` is a URI: it trains in a local scratch directory and lands in
    `<URI>/<run name>` with the layout of a local in-process run (config.yaml, metrics.jsonl, checkpoints/epoch_NNNN/,
    best/, summary.json, test.json), every returned path a URI.

    An earlier attempt's files are fetched into the scratch directory first, so a retried trial or `--resume` continues
    from the latest checkpoint in the bucket. config.yaml is written there before training (for `--resume`); after
    every epoch the new checkpoint, `best/`, metrics.jsonl and summary.json are uploaded and the checkpoints beyond
    `train.keep_checkpoints` deleted there (`_uploading`), so a process that dies loses the epoch in flight only, as
    a Ray Train run does. The scratch directory is removed at the end, also when `on_epoch` ends the run (Tune's
    `report` raises SystemExit in a trial that its scheduler stops).
    """
    import shutil
    import tempfile

    target = str(run_location(cfg))
    scratch_root = Path(tempfile.mkdtemp(prefix="reid-scratch-"))
    scratch = scratch_root / cfg.run_name()
    try:
        if storage.is_dir(storage.join(target, "checkpoints")):
            storage.copy_dir(target, scratch)
        storage.write_text(storage.join(target, "config.yaml"), _config_yaml(cfg))
        local = _train_local(cfg, manifest_path, scratch, _uploading(scratch, target, cfg.train.keep_checkpoints,
                                                                      on_epoch))
        best = storage.join(target, "best") if local.best_checkpoint is not None else None
        out = TrainResult(run_dir=target, history=local.history, best_checkpoint=best, best_map=local.best_map,
                          final=local.final)
        _write_summary(out)
        return _test_at_end(cfg, out, local_copy=local.best_checkpoint) if test else out
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


def _uploading(scratch: Path, target: str, keep: int, on_epoch):
    """The per-epoch hook of `_train_into_uri`: mirror the epoch's checkpoint, best/ and metrics.jsonl of the local
    run `scratch` into `target` and write summary.json there, then call `on_epoch(metrics, checkpoint URI | None)`.
    The summary comes first because `on_epoch` may not return: Tune stops a trial inside its last `report`, so
    nothing after the last epoch's hook is sure to run in a sweep."""

    def after_epoch(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        uploaded = None
        if checkpoint_dir is not None:
            uploaded = storage.copy_dir(checkpoint_dir, storage.join(target, "checkpoints", checkpoint_dir.name))
            if metrics.get("is_best"):
                storage.remove(storage.join(target, "best"))
                storage.copy_dir(uploaded, storage.join(target, "best"))  # within the bucket: nothing uploaded twice
            kept = sorted(n for n in storage.list_dir(storage.join(target, "checkpoints")) if n.startswith("epoch_"))
            for old in kept[:-keep]:
                storage.remove(storage.join(target, "checkpoints", old))
        storage.write_bytes(storage.join(target, "metrics.jsonl"), (scratch / "metrics.jsonl").read_bytes())
        history = read_history(scratch)
        best = storage.join(target, "best") if (scratch / "best").is_dir() else None
        _write_summary(TrainResult(run_dir=target, history=history, best_checkpoint=best, final=history[-1],
                                   best_map=max((h.get("best_mAP", -1.0) for h in history), default=-1.0)))
        if on_epoch is not None:
            on_epoch(metrics, uploaded)

    return after_epoch


def _train_local(cfg: ExperimentConfig, manifest_path: Path | str, run_dir: Path, on_epoch=None) -> TrainResult:
    from reid.data.batching import iter_local_batches
    from reid.data.prefetch import prefetch
    from reid.registry import get_method
    from reid.training.session import LocalSession
    from reid.training.worker import run_worker

    manifest = read_manifest(manifest_path)
    spec = get_method(cfg.method)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")

    def batches(epoch: int):  # decoded a batch or two ahead, while the step runs (reid.data.prefetch)
        return prefetch(iter_local_batches(manifest, cfg.data, cfg.seed, spec.inputs, spec.batching, epoch, 0, 1))

    session = LocalSession(run_dir, batches, keep=cfg.train.keep_checkpoints, on_epoch=on_epoch)
    run_worker(cfg, manifest, session, run_name=cfg.run_name(), run_dir=run_dir)
    history = read_history(run_dir)
    best = run_dir / "best"
    out = TrainResult(run_dir=run_dir, history=history, best_checkpoint=best if best.exists() else None,
                      best_map=max((h.get("best_mAP", -1.0) for h in history), default=-1.0),
                      final=history[-1] if history else {})
    _write_summary(out)
    return out


def _summary(result: TrainResult) -> dict[str, Any]:
    return {
        "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        "best_mAP": result.best_map,  # on the validation split (reid.data.validation)
        "epochs": len(result.history),
        "final": {k: v for k, v in result.final.items() if isinstance(v, int | float | str | bool)},
        "test": result.test,  # the test split, once, with best_checkpoint
    }


def _write_summary(result: TrainResult) -> None:
    storage.write_text(storage.join(result.run_dir, "summary.json"), json.dumps(_summary(result), indent=2))
