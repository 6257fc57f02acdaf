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

from reid import storage
from reid.config import ExperimentConfig, save_config
from reid.data.records import read_manifest
from reid.errors import ReidError


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
    """The manifest of `cfg.data`; generates the synthetic set on first use. A URI (`data.root=s3://...` or
    `data.manifest=s3://...`) is returned as it is: the frames are then read from the bucket (reid.data.decode)."""
    remote = cfg.data.manifest if cfg.data.manifest else storage.join(cfg.data.root, "manifest.parquet")
    if storage.is_uri(remote):
        if not storage.is_file(remote):
            raise ReidError(f"no manifest at {remote}: copy a prepared dataset directory there "
                            f"(`reid prepare ... --out DIR`, then upload DIR as it is)")
        return remote
    if cfg.data.manifest:
        path = Path(cfg.data.manifest)
    else:
        path = Path(cfg.data.root) / "manifest.parquet"
    # absolute: Ray Train workers and Ray Data actors do not run in the driver's working directory
    if path.is_file():
        return path.resolve()
    if cfg.data.attributes == "transferred":   # written by `reid transfer-attributes`, never generated here
        raise ReidError(f"no transferred-attribute manifest at {path}: write it with `reid transfer-attributes "
                        f"--source <attribute set> --target {cfg.data.root} --out <labels.csv> --out-manifest {path}` "
                        f"(docs/datasets.md), or set data.attributes=annotated data.manifest=null")
    if cfg.data.dataset == "synthetic":
        from reid.data.synth import ensure_dataset

        return Path(ensure_dataset(Path(cfg.data.root), cfg.data.synth_preset,
                                   strength=cfg.data.synth_strength or None)).resolve()
    raise ReidError(f"no manifest at {path}: prepare the dataset first "
                    f"(`reid prepare {cfg.data.dataset} --root <dataset root> --out {cfg.data.root}`)")


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


TEST_FILE = "test.json"


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


def test_document(outcome: EvalOutcome, checkpoint: Path | str | None) -> dict[str, Any]:
    """What `test.json` holds: the checkpoint, the metrics and per query (in the split's order) its tracklet, pid,
    AP (None for a query without a valid match) and 1-based rank of the first match (0 = none)."""
    split, rank = outcome.split, outcome.ranking
    per_query = {"tracklet_id": [outcome.records[int(i)].tracklet_id for i in split.query],
                 "pid": [int(outcome.records[int(i)].pid) for i in split.query],
                 "ap": [None if a != a else float(a) for a in rank.ap.tolist()],
                 "first_match_rank": [int(r) for r in rank.first_match_rank.tolist()]}
    metrics = {k: v for k, v in outcome.metrics.items() if isinstance(v, int | float | str)}
    return {"checkpoint": str(checkpoint) if checkpoint else None, "metrics": metrics, "per_query": per_query}


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
        return iter_local_batches(manifest, cfg, spec.inputs, spec.batching, epoch, 0, 1)

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


def latest_checkpoint(run_dir: Path | str) -> Path | str | None:
    """Best checkpoint of a finished run if recorded, else the newest checkpoint directory found. For a run stored
    under a URI: the checkpoint's URI (see `load_model`, which downloads it)."""
    if storage.is_uri(run_dir):
        return _latest_uri_checkpoint(str(run_dir))
    summary = run_dir / "summary.json"
    if summary.exists():
        best = json.loads(summary.read_text()).get("best_checkpoint")
        if best and Path(best).exists():
            return Path(best)
    return newest_checkpoint(run_dir)


def _latest_uri_checkpoint(run_dir: str) -> str | None:
    from reid.training.checkpoint import STATE_FILE

    summary = storage.join(run_dir, "summary.json")
    if storage.is_file(summary):
        best = json.loads(storage.read_text(summary)).get("best_checkpoint")
        if best and storage.is_file(storage.join(best, STATE_FILE)):
            return best
    # Ray's checkpoint_<timestamp> names sort by time; an upload cut short has no state.pt (written last: atomic)
    found = [storage.join(run_dir, n) for n in storage.list_dir(run_dir) if n.startswith("checkpoint_")]
    whole = [c for c in found if storage.is_file(storage.join(c, STATE_FILE))]
    return whole[-1] if whole else None


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """A run's whole checkpoint directories, oldest first: `checkpoints/epoch_NNNN` (in-process) or Ray's
    timestamped `checkpoint_<time>` directories (not `checkpoint_manager_snapshot.json`), leaving out any whose
    `state.pt` was cut short (see `reid.training.checkpoint.is_complete`)."""
    from reid.training.checkpoint import is_complete

    return [p for p in sorted(run_dir.glob("checkpoints/epoch_*")) + sorted(run_dir.glob("checkpoint_*"))
            if p.is_dir() and not p.name.endswith(".tmp") and is_complete(p)]


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The newest whole checkpoint directory of a run (see `complete_checkpoints`)."""
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


@dataclass
class EvalOutcome:
    """Metrics of one evaluation plus what the report needs (distances, split, sampled model extras)."""

    metrics: dict[str, Any]
    distmat: Any = None
    split: Any = None
    records: list = field(default_factory=list)
    manifest: Any = None
    extras: dict[int, dict[str, Any]] = field(default_factory=dict)
    checkpoint: Path | None = None
    group_names: list[str] | None = None
    ranking: Any = None  # reid.evaluation.metrics.RankResult: per-query AP and first-match rank


def load_model(cfg: ExperimentConfig, checkpoint: Path | str | None, info):
    """The model of `cfg` (reid.models.factory) with weights from `checkpoint` (a checkpoint dir, state.pt, or run
    dir; local or URI), or a randomly initialised untrained one when `checkpoint` is None; and the checkpoint used."""
    from reid.models.factory import build_method
    from reid.training.checkpoint import STATE_FILE

    if checkpoint is not None and storage.is_uri(checkpoint):
        checkpoint = _download_checkpoint(str(checkpoint))
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if checkpoint.is_dir() and not (checkpoint / STATE_FILE).exists():
            found = latest_checkpoint(checkpoint)
            if found is None:
                raise ReidError(f"no checkpoint found in {checkpoint} (expected {STATE_FILE} in a checkpoint "
                                "directory)")
            checkpoint = found
    built = build_method(cfg, info, checkpoint)
    return built.model, built.checkpoint


def _download_checkpoint(uri: str) -> Path:
    """A local copy of a checkpoint named by URI: a run directory (its best or newest checkpoint), a checkpoint
    directory, or a state file."""
    import tempfile

    from reid.training.checkpoint import STATE_FILE

    if storage.is_file(uri):
        local = Path(tempfile.mkdtemp(prefix="reid-ckpt-")) / storage.name(uri)
        local.write_bytes(storage.read_bytes(uri))
        return local
    if not storage.is_file(storage.join(uri, STATE_FILE)):
        found = latest_checkpoint(uri)
        if found is None:
            raise ReidError(f"no checkpoint found in {uri} (expected {STATE_FILE} in a checkpoint directory)")
        uri = str(found)
    return storage.local_dir(uri)


def evaluate(cfg: ExperimentConfig, checkpoint: Path | None, *, manifest: Path | None = None,
             backend: str = "local", sample_queries: int = 0, progress: bool = True) -> EvalOutcome:
    """Evaluate a checkpoint (or an untrained model) on the test split of `cfg.data` with `cfg.eval.protocol`.

    backend "local" extracts features in this process; "ray" runs Ray Data batch inference
    (reid.training.inference). `sample_queries` > 0 keeps per-query extras (thumbnails, temporal weights, spatial
    maps) of that many queries and their top gallery matches for the report.
    """
    import torch

    from reid.data.batching import BatchMaker
    from reid.data.info import data_info
    from reid.evaluation.protocols import get_protocol
    from reid.registry import get_method
    from reid.training.features import record_feature
    from reid.training.validate import score_features

    manifest_file = Path(manifest) if manifest else manifest_path_for(cfg)
    m = read_manifest(manifest_file)
    spec = get_method(cfg.method)
    info = data_info(m, cfg.data)
    model, used = load_model(cfg, checkpoint, info)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    split = get_protocol(cfg.eval.protocol, dataset=m.dataset or cfg.data.dataset).split(m.records)
    indices = sorted(set(split.query.tolist()) | set(split.gallery.tolist()))
    pairwise = cfg.eval.pairwise and hasattr(model, "pair_distance")
    if backend == "ray":
        if pairwise:
            raise ReidError("eval.pairwise=true evaluates query-gallery pairs in this process: use --backend local "
                            "(or eval.pairwise=false for single-pass features with Ray Data)")
        from reid.training.inference import extract_features_ray

        features = extract_features_ray(cfg, manifest_file, model, indices)
    else:
        from reid.training.features import extract_features

        maker = BatchMaker(m, cfg, spec.inputs - {"attributes"}, train=False)
        feats = extract_features(model, maker, indices, cfg, spec, device, progress=progress, states=pairwise)
        features = dict(zip(indices, feats, strict=True))
    scored = score_features(model, features, m.records, split, cfg.eval, device, pairwise=pairwise)
    extras: dict[int, dict[str, Any]] = {}
    if sample_queries:
        maker = BatchMaker(m, cfg, spec.inputs - {"attributes"}, train=False)
        order = scored.distmat.argsort(axis=1)[:sample_queries, :5]
        wanted = set(split.query[:sample_queries].tolist()) | {int(split.gallery[j]) for j in order.ravel()}
        with torch.no_grad():
            for i in sorted(wanted):
                extras[i] = record_feature(model, maker, i, cfg, spec, device, keep_extras=True)[1]
    return EvalOutcome(metrics=scored.metrics, distmat=scored.distmat, split=split, records=m.records,
                       manifest=m, extras=extras, checkpoint=used, ranking=scored.result,
                       group_names=list(getattr(model, "group_names", None) or []) or None)


def write_report(cfg: ExperimentConfig, outcome: EvalOutcome, path: Path, *, history: list[dict] | None = None,
                 baseline: EvalOutcome | None = None) -> Path:
    """Self-contained HTML report (CMC, ranked thumbnails, temporal weights, attention maps) of an evaluation."""
    from reid.training.reporting import write_report as _write

    return _write(cfg, outcome, Path(path), history=history, baseline=baseline)
