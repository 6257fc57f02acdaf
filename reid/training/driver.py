"""The driver: builds the TorchTrainer for a config and runs it (also the body of a Ray Tune trial).

Run identity: `RunConfig(name=cfg.run_name(), storage_path=...)` with no timestamp, so re-running the same command
resumes the same run from its latest checkpoint (Ray Train V2 has no `Trainer.restore`; a run resumes by being
started again with the same name and storage path).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from reid import node_paths, storage
from reid.config.schema import ExperimentConfig
from reid.errors import ReidError
from reid.ray_runtime import init_ray, local_cluster_started, quiet_teardown, train_logging_config
from reid.training.capacity import GB, shortfall
from reid.training.interrupt import fit, interruptible
from reid.training.snapshot import repair as repair_snapshot
from reid.training.snapshot import tidy as tidy_checkpoints

START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"


def storage_root(cfg: ExperimentConfig) -> str:
    path = cfg.ray.storage_path
    return path if "://" in path else str(Path(path).resolve())


def check_capacity(num_workers: int, per_worker: dict[str, float], *, asked: str | None = None,
                   fix: str | None = None, waiting: str | None = None) -> None:
    """Before the fit: Train workers that the cluster's nodes cannot hold are an error on a local cluster (it never
    grows) and a line saying what the run waits for elsewhere (an autoscaler may add nodes; reid.training.capacity).
    `asked`, `fix` and `waiting` word it for other actors (`reid serve`'s replicas)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    gap = shortfall(num_workers, per_worker, nodes, asked)
    if gap is None:
        return
    if local_cluster_started():
        if fix is None:
            no_gpu = per_worker.get("GPU", 0) > 0 and not any(n.get("GPU", 0) > 0 for n in nodes)
            keys = "ray.gpus_per_worker, ray.memory_per_worker" if "memory" in per_worker else "ray.gpus_per_worker"
            lower = "ray.use_gpu=false trains on its CPUs" if no_gpu else (
                f"lower ray.num_workers or ray.cpus_per_worker ({keys})")
            fix = f"{lower}, or name a larger cluster with ray.address"
        raise ReidError(f"{gap}, and this local Ray cluster cannot grow: {fix}")
    waiting = waiting or (f"Ray Train retries the start every {os.environ.get(START_TIMEOUT_ENV, '120')} s while "
                          f"the cluster grows (Ctrl-C stops it)")
    print(f"[reid] waiting for resources: {gap} now; {waiting}", flush=True)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs."""
    import ray.train

    from reid.data.records import read_manifest
    from reid.registry import get_method
    from reid.training.ray_session import RaySession
    from reid.training.worker import run_worker

    quiet_teardown()  # a SIGTERM (the fit stopped) inside a __del__: no traceback on the driver's console
    cfg = ExperimentConfig.model_validate(loop_config["config"])
    # a node an autoscaler added after the driver's check of the paths (reid/node_paths.py)
    node_paths.check_here(loop_config.get("paths") or {},
                          f"Train worker rank {ray.train.get_context().get_world_rank()}")
    manifest = read_manifest(loop_config["manifest"])
    run_dir = Path(loop_config["run_dir"]) if "://" not in loop_config["run_dir"] else None
    spec = get_method(cfg.method)
    session = RaySession({"manifest": loop_config["manifest"], "data": cfg.data, "seed": cfg.seed,
                          "epochs": cfg.train.epochs, "inputs": spec.inputs, "batching": spec.batching,
                          "ledger": loop_config["ledger"], "resume_from": loop_config.get("resume_from")}, run_dir)
    run_worker(cfg, manifest, session, run_name=loop_config["run"], export_metrics=True, run_dir=run_dir)


def fit_ray(cfg: ExperimentConfig, manifest_path: Path | str, callbacks: list | None = None,
            run_name: str | None = None):
    """Build and fit the TorchTrainer; returns the Ray Train `Result`."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from reid.data.pipeline import batches_per_epoch, get_or_create_ledger, start_ray_data_actors
    from reid.models.backbones import check_weights
    from reid.registry import get_method

    spec = get_method(cfg.method)
    run = run_name or cfg.run_name()
    if not storage.is_uri(manifest_path):  # a manifest (and its frames) in a bucket stays a URI
        manifest_path = Path(manifest_path).resolve()
    if cfg.train.init_from and "://" not in cfg.train.init_from:
        # workers do not run in the driver's working directory
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(
            update={"init_from": str(Path(cfg.train.init_from).resolve())})})
    init_ray(cfg.ray, train=True)
    resources = {"CPU": cfg.ray.cpus_per_worker}
    if cfg.ray.use_gpu:
        resources["GPU"] = cfg.ray.gpus_per_worker
    if cfg.ray.memory_per_worker:
        resources["memory"] = int(cfg.ray.memory_per_worker * GB)
    check_capacity(cfg.ray.num_workers, resources)
    paths = node_paths.local_paths(cfg, manifest_path, storage_root(cfg))
    paths_seen = node_paths.start(paths, storage_root(cfg))  # answered while the checks below run
    start_ray_data_actors()  # up while the Train workers start, not in their first stream (pipeline.py)
    # pre-flight on the driver: a bad manifest or missing required weights fail here, in one line, before any worker
    batches_per_epoch(manifest_path, cfg.data, cfg.seed, spec.batching, cfg.ray.num_workers)
    check_weights(cfg.model)
    node_paths.finish(paths_seen)  # the run's local paths on every other node (reid/node_paths.py)
    # One ledger per fit call: the ledger of a previous fit of the same run may still be shutting down (its last
    # handle just went), and getting it by name would hand that dying actor to this fit.
    ledger_name = f"reid-unreadable-{run}-{uuid.uuid4().hex[:8]}"
    # The ledger lives on the driver's node, like Ray Train's controller: anywhere else, losing that node kills it
    # and every retry of the run fails on it. The handle is kept for the whole fit: a named actor without handles
    # is garbage-collected, and with it the record of unreadable tracklets (reported after the fit).
    # Each Train worker builds its own data stream (reid.data.pipeline): no `datasets=` for the trainer.
    ledger = get_or_create_ledger(ledger_name, node_id=ray.get_runtime_context().get_node_id())
    trainer = interruptible(TorchTrainer)(
        train_loop_per_worker,
        train_loop_config={"config": cfg.model_dump(mode="json"), "manifest": str(manifest_path),
                           "ledger": ledger_name, "run": run, "run_dir": f"{storage_root(cfg)}/{run}", "paths": paths,
                           "resume_from": repair_snapshot(f"{storage_root(cfg)}/{run}")},
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.ray.num_workers, use_gpu=cfg.ray.use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=run,
            storage_path=storage_root(cfg),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints,
                                                         checkpoint_score_attribute="checkpoint_score",
                                                         checkpoint_score_order="max"),
            failure_config=ray.train.FailureConfig(max_failures=cfg.ray.max_failures),
            callbacks=callbacks or None,
            logging_config=train_logging_config(),  # Ray Train's own lines to its log files (reid.ray_runtime)
        ),
    )
    os.environ.setdefault(START_TIMEOUT_ENV, "120")
    try:
        result = fit(trainer)  # Train V2 raises the run's error (TrainingFailedError) instead of returning it
    except Exception as exc:
        bad = report_unreadable(ledger, cfg, f"{storage_root(cfg)}/{run}")
        if bad:
            raise_if_too_many_unreadable(bad, cfg, manifest_path, exc)
        raise
    report_unreadable(ledger, cfg, f"{storage_root(cfg)}/{run}")
    ray.kill(ledger)
    tidy_checkpoints(f"{storage_root(cfg)}/{run}")  # folders of epochs rolled back within the fit (snapshot.py)
    return result


def report_unreadable(ledger, cfg: ExperimentConfig, run_dir: str) -> dict[int, str]:
    """Print how many training tracklets the decoding actors skipped and keep the list (record index -> reason) in
    `<run_dir>/unreadable.json`: the ledger actor that counted them ends with this driver."""
    import json

    from reid.data.pipeline import unreadable_tracklets

    bad = unreadable_tracklets(ledger)
    if bad:
        print(f"[reid] skipped {len(bad)} unreadable training tracklet(s) (data.max_errored_fraction="
              f"{cfg.data.max_errored_fraction:g}); first: {bad[min(bad)]}", flush=True)
        # a local run directory or a URI alike (reid.storage): the list belongs next to the run's checkpoints
        storage.write_text(storage.join(run_dir, "unreadable.json"),
                           json.dumps({str(k): v for k, v in sorted(bad.items())}, indent=2))
    return bad


def raise_if_too_many_unreadable(bad: dict[int, str], cfg: ExperimentConfig, manifest_path: Path,
                                 error: BaseException) -> None:
    """Name the data threshold when it is what failed the run: Ray truncates a worker's error snippet in the middle,
    which cuts the ReidError raised inside a decoding actor out of the message the user gets."""
    from reid.data.records import read_manifest
    from reid.errors import ReidError

    total = len(read_manifest(manifest_path).by_role("train"))
    if len(bad) > cfg.data.max_errored_fraction * total:
        raise ReidError(f"{len(bad)} of {total} training tracklets could not be decoded, more than "
                        f"data.max_errored_fraction={cfg.data.max_errored_fraction:g}; first: {bad[min(bad)]} "
                        f"(all of them: unreadable.json in the run directory)") from error
