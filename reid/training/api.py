"""Python API of training: `train(cfg)` (and `resume_source` for `reid train --resume`); the CLI and Tune call it.

A run lives in `<ray.storage_path>/<run name>/`: `config.yaml` (the resolved config), `metrics.jsonl`,
checkpoints (`checkpoints/epoch_NNNN/` in-process; Ray Train's `checkpoint_<timestamp>/` under Ray),
`best/` (in-process) or `summary.json` naming the best checkpoint, `test.json`, `eval.json`, `report.html`.
Evaluation (`evaluate`, run and checkpoint discovery, reports) is the evaluation side's: `reid.evaluation.run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reid import storage
from reid.config import ExperimentConfig, save_config
from reid.data.records import read_manifest
from reid.data.source import manifest_path as dataset_manifest
from reid.errors import ReidError
from reid.evaluation.run.discovery import read_history
from reid.evaluation.run.evaluate import TEST_FILE, evaluate, test_document


@dataclass
class TrainResult:
    run_dir: Path  # a URI string ("s3://bucket/runs/<name>") when ray.storage_path is one (_finish_uri_run)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: Path | None = None
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
    import tempfile

    config = storage.join(run_dir, "config.yaml")
    if not storage.is_file(config):
        raise ReidError(f"--resume expects a run directory holding config.yaml; not found: {config}")
    if storage.is_uri(run_dir):
        local = Path(tempfile.mkdtemp(prefix="reid-resume-")) / "config.yaml"
        local.write_text(storage.read_text(config))
        return str(local), [f"name={storage.name(run_dir)}", f"ray.storage_path={storage.parent(run_dir)}"]
    return config, [f"name={Path(run_dir).name}", f"ray.storage_path={Path(run_dir).resolve().parent}"]


def run_dir_for(cfg: ExperimentConfig) -> Path:
    storage = cfg.ray.storage_path
    if "://" in storage:
        raise ReidError("in-process runs need a local ray.storage_path; cloud URIs need Ray workers")
    return Path(storage).resolve() / cfg.run_name()


def train(cfg: ExperimentConfig, callbacks: list | None = None, on_epoch=None, *, test: bool = True) -> TrainResult:
    """Train `cfg`: in-process when `ray.num_workers == 0`, otherwise with Ray Train. Resumes an existing run.

    callbacks: Ray Train `UserCallback`s (e.g. Tune's `TuneReportCallback`) for Ray runs; on_epoch(metrics,
    checkpoint_dir | None) is called after every epoch of an in-process run (e.g. to `ray.tune.report`).
    test: evaluate the test split once at the end with the checkpoint chosen on validation (`_test_at_end`); sweeps,
    which only compare validation scores, and callers that evaluate the test split themselves pass False.
    """
    manifest_path = _with_validation_split(cfg, manifest_path_for(cfg))
    if cfg.ray.num_workers == 0:
        result = _train_local(cfg, manifest_path, on_epoch)
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
        return _finish_uri_run(cfg, result)
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

    if "://" in cfg.ray.storage_path:
        out_dir: Path | str = storage.join(cfg.ray.storage_path, cfg.run_name())
    else:
        out_dir = run_dir_for(cfg)
    return write_validation_manifest(manifest_path, cfg.data.val_identities, out_dir)


def _test_at_end(cfg: ExperimentConfig, result: TrainResult) -> TrainResult:
    """Evaluate the test split once, with the checkpoint chosen on validation, and keep it apart from the per-epoch
    validation: `result.test`, `summary.json` ("test") and `test.json` (metrics + per-query AP and first-match rank,
    which the ablation statistics resample). Skipped for runs stored under a URI (their checkpoints are remote)."""
    if result.best_checkpoint is None or "://" in str(result.run_dir):
        return result
    outcome = evaluate(cfg, Path(result.best_checkpoint), progress=False)
    doc = test_document(outcome, result.best_checkpoint)
    result.test = doc["metrics"]
    (Path(result.run_dir) / TEST_FILE).write_text(json.dumps(doc))
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


def _train_local(cfg: ExperimentConfig, manifest_path: Path, on_epoch=None) -> TrainResult:
    from reid.data.batching import iter_local_batches
    from reid.registry import get_method
    from reid.training.session import LocalSession
    from reid.training.worker import run_worker

    manifest = read_manifest(manifest_path)
    spec = get_method(cfg.method)
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")

    def batches(epoch: int):
        return iter_local_batches(manifest, cfg.data, cfg.seed, spec.inputs, spec.batching, epoch, 0, 1)

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
    result.run_dir.mkdir(parents=True, exist_ok=True)
    (result.run_dir / "summary.json").write_text(json.dumps(_summary(result), indent=2))
