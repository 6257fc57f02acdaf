"""Python API of the spine: `train(cfg)` and `evaluate(cfg, checkpoint)`; the CLI and Tune call these.

A run lives in `<ray.storage_path>/<run name>/`: `config.yaml` (the resolved config), `metrics.jsonl`,
checkpoints (`checkpoints/epoch_NNNN/` in-process; Ray Train's `checkpoint_<timestamp>/` under Ray),
`best/` (in-process) or `summary.json` naming the best checkpoint, `eval.json`, `report.html`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reid.config import ExperimentConfig, save_config
from reid.data.records import read_manifest
from reid.errors import ReidError


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: Path | None = None
    best_map: float = -1.0
    final: dict[str, Any] = field(default_factory=dict)


def manifest_path_for(cfg: ExperimentConfig) -> Path:
    """The manifest of `cfg.data`; generates the synthetic set on first use."""
    if cfg.data.manifest:
        path = Path(cfg.data.manifest)
    else:
        path = Path(cfg.data.root) / "manifest.parquet"
    if path.is_file():
        return path
    if cfg.data.dataset == "synthetic":
        from reid.data.synth import ensure_dataset

        return Path(ensure_dataset(Path(cfg.data.root), cfg.data.synth_preset))
    raise ReidError(f"no manifest at {path}: prepare the dataset first "
                    f"(`reid prepare {cfg.data.dataset} --root <dataset root> --out {cfg.data.root}`)")


def run_dir_for(cfg: ExperimentConfig) -> Path:
    storage = cfg.ray.storage_path
    if "://" in storage:
        raise ReidError("in-process runs need a local ray.storage_path; cloud URIs need Ray workers")
    return Path(storage).resolve() / cfg.run_name()


def train(cfg: ExperimentConfig, callbacks: list | None = None) -> TrainResult:
    """Train `cfg`: in-process when `ray.num_workers == 0`, otherwise with Ray Train. Resumes an existing run."""
    manifest_path = manifest_path_for(cfg)
    if cfg.ray.num_workers == 0:
        return _train_local(cfg, manifest_path)
    from reid.training.driver import fit_ray

    result = fit_ray(cfg, manifest_path, callbacks=callbacks)
    run_dir = Path(result.path) if "://" not in str(result.path) else run_dir_for(cfg)
    if result.error is not None:
        raise result.error
    save_config(cfg, run_dir / "config.yaml")
    history = _metrics_history(result)
    best_ckpt, best_map = None, -1.0
    for checkpoint, metrics in result.best_checkpoints or []:
        if metrics.get("checkpoint_score", -1.0) > best_map:
            best_ckpt, best_map = Path(checkpoint.path), metrics["checkpoint_score"]
    out = TrainResult(run_dir=run_dir, history=history, best_checkpoint=best_ckpt, best_map=best_map,
                      final=dict(result.metrics or {}))
    _write_summary(out)
    return out


def _metrics_history(result) -> list[dict[str, Any]]:
    df = getattr(result, "metrics_dataframe", None)
    return df.to_dict("records") if df is not None else [dict(result.metrics or {})]


def _train_local(cfg: ExperimentConfig, manifest_path: Path) -> TrainResult:
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
        return iter_local_batches(manifest, cfg, spec.inputs, spec.batching, epoch, 0, 1)

    session = LocalSession(run_dir, batches, keep=cfg.train.keep_checkpoints)
    run_worker(cfg, manifest, session, run_name=cfg.run_name())
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best = run_dir / "best"
    out = TrainResult(run_dir=run_dir, history=history, best_checkpoint=best if best.exists() else None,
                      best_map=max((h.get("best_mAP", -1.0) for h in history), default=-1.0),
                      final=history[-1] if history else {})
    _write_summary(out)
    return out


def _write_summary(result: TrainResult) -> None:
    result.run_dir.mkdir(parents=True, exist_ok=True)
    (result.run_dir / "summary.json").write_text(json.dumps({
        "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        "best_mAP": result.best_map,
        "epochs": len(result.history),
        "final": {k: v for k, v in result.final.items() if isinstance(v, int | float | str | bool)},
    }, indent=2))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """Best checkpoint of a finished run if recorded, else the newest checkpoint directory found."""
    summary = run_dir / "summary.json"
    if summary.exists():
        best = json.loads(summary.read_text()).get("best_checkpoint")
        if best and Path(best).exists():
            return Path(best)
    found = sorted(run_dir.glob("checkpoints/epoch_*")) + sorted(run_dir.glob("checkpoint_*"))
    return found[-1] if found else None
