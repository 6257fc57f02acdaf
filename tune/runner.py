"""Tune plumbing shared by sweeps and ablation grids: Ray start-up, trial resources, fit or restore.

- Ray is started with the dashboard ON: with `include_dashboard=False`, ray 2.60 left the placement groups of
  finished Train-inside-Tune runs behind and the next trials hung (WorkerGroupStartupTimeoutError); the cleaner
  needs the State API that the dashboard serves (shared/notes/ray-2.60-facts.md section 3.4).
- A trial gets fractional CPUs (`tune.with_resources`), or on a cluster with driver nodes a `reid_driver` slot on
  the head; `max_concurrent_trials` follows from the cluster's CPUs and GPUs and what one trial takes (its own
  plus, for Ray Train trials, its workers and decoding actors), unless --max-concurrent says it.
- The experiment directory is `<storage>/<name>` with a deterministic name, so `resume=True` finds it again and
  continues it with `Tuner.restore(..., resume_errored=True)`. It may be a URI (s3://, gs://): Tune keeps the
  experiment there through pyarrow.fs (`RunConfig.storage_path`) and restores from it; the sweep's own files and the
  trials' runs go there through reid.storage.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid import node_paths, ray_runtime, storage
from reid.config import ExperimentConfig
from reid.errors import ReidError
from reid.training.capacity import GB, amount
from reid.training.metrics import watch_line
from tune.console import trial_line_callback
from tune.experiment_record import RECORD, check_record, write_record
from tune.interrupt import fit_or_interrupt

# the start-up helpers live in reid.ray_runtime (one Ray start-up for every entry point); kept here for callers
start_local_ray = ray_runtime.start_local_ray
_own_address_for_workers = ray_runtime.own_address_for_workers

NEW_OUTPUT_ENV = "RAY_AIR_NEW_OUTPUT"
PRINT_TRIAL_ERRORS_ENV = "TUNE_PRINT_ALL_TRIAL_ERRORS"
def init_ray(cfg: ExperimentConfig, num_cpus: float | None = None, *, manifest: Path | str | None = None,
             experiment: Path | str | None = None) -> None:
    """`reid.ray_runtime.init_ray` with the sweep's config: `ray.address` (or $RAY_ADDRESS), else a local cluster,
    dashboard on (module docstring). On a `ray start` head node, pass ray.address=auto to use that cluster.
    On a cluster of several nodes, the dataset (`manifest`) and the `experiment` directory, where the trials write
    their runs, must be seen from every node (reid/node_paths.py): checked once here, not in every trial."""
    ray_runtime.init_ray(cfg.ray, num_cpus=num_cpus, train=True)
    if manifest is not None:
        root = storage.parent(experiment) if experiment is not None else None  # --out, which holds it
        node_paths.finish(node_paths.start(node_paths.local_paths(cfg, manifest, root), root, storage_key="--out"),
                          workers="the sweep's trials and their workers")
    print(watch_line(""), flush=True)


DRIVER_RESOURCE = "reid_driver"  # a custom resource only head nodes advertise (cluster/*.yaml, KubeRay head)


@dataclass(frozen=True)
class TrialResources:
    per_trial: dict[str, float]   # what `tune.with_resources` reserves for the trial process itself
    total_cpus: float             # the trial plus its Ray Train workers and decoding actors
    max_concurrent: int
    total_gpus: float = 0.0       # GPUs of one trial (its Train workers, or the trial itself in-process)
    total_memory: float = 0.0     # bytes of memory one trial reserves (ray.memory_per_worker), 0 for none

    def each(self) -> str:
        """What one trial reserves in all: `0.5 CPU`, `1 CPU + 1 GPU + 8 GB memory`."""
        return " + ".join(amount(k, v) for k, v in (("CPU", self.total_cpus), ("GPU", self.total_gpus),
                                                      ("memory", self.total_memory)) if v > 0) or "0 CPU"


def _may_autoscale(cfg: ExperimentConfig) -> bool:
    """A cluster we connected to (ray.address / RAY_ADDRESS) may grow: an autoscaler adds nodes for pending
    trials. A local cluster this process started never grows."""
    return bool(cfg.ray.address or os.environ.get("RAY_ADDRESS"))


def trial_resources(cfg: ExperimentConfig, cpus_per_trial: float | None, max_concurrent: int | None,
                    num_trials: int) -> TrialResources:
    """What one trial reserves and how many run at once.

    In-process trials (`ray.num_workers=0`) take `cpus_per_trial` (default `ray.cpus_per_worker`, fractional on
    small machines), `ray.gpus_per_worker` GPUs with `ray.use_gpu` and `ray.memory_per_worker` GB of memory when
    set (a Ray Train trial's workers reserve that memory each). A Ray Train trial is only a driver (the
    Train controller runs beside it): on a cluster whose head advertises `reid_driver`, it takes a slot of that and
    no CPU, so it runs on the head and a spot worker's reclaim cannot kill it; elsewhere a sliver of CPU. Its
    workers and decoding actors reserve the rest themselves.

    Concurrency: an explicit `max_concurrent` is honoured as given (on an autoscaling cluster the nodes are not
    there yet when the sweep starts). Otherwise it is what the cluster holds now, counting CPUs, GPUs and (with
    `ray.memory_per_worker`) memory, at least 1.
    """
    import ray

    resources = ray.cluster_resources()
    cluster_cpus = float(resources.get("CPU", 0.0))
    cluster_gpus = float(resources.get("GPU", 0.0))
    cluster_memory = float(resources.get("memory", 0.0))
    memory_per_worker = int(cfg.ray.memory_per_worker * GB) if cfg.ray.memory_per_worker else 0
    gpus_per_worker = cfg.ray.gpus_per_worker if cfg.ray.use_gpu else 0.0
    decode_cpus = cfg.data.decode_workers * cfg.data.decode_cpus
    if cfg.ray.num_workers == 0:
        own = cpus_per_trial or cfg.ray.cpus_per_worker
        total_cpus, total_gpus, total_memory = own, gpus_per_worker, memory_per_worker
        per_trial: dict[str, float] = {"cpu": own}
        if total_gpus:
            per_trial["gpu"] = total_gpus
        if total_memory:
            per_trial["memory"] = total_memory
    else:
        pinned = resources.get(DRIVER_RESOURCE, 0.0) >= 1 and cpus_per_trial is None
        own = 0.0 if pinned else (cpus_per_trial or 0.01)
        per_trial = {"cpu": own, DRIVER_RESOURCE: 1.0} if pinned else {"cpu": own}
        total_cpus = own + cfg.ray.num_workers * cfg.ray.cpus_per_worker + decode_cpus
        total_gpus = cfg.ray.num_workers * gpus_per_worker
        total_memory = cfg.ray.num_workers * memory_per_worker
    fits = (total_cpus <= cluster_cpus + 1e-9 and total_gpus <= cluster_gpus + 1e-9
            and total_memory <= cluster_memory)
    if not fits and not _may_autoscale(cfg):
        memory = (f" and {amount('memory', total_memory)} (ray.memory_per_worker)" if total_memory else "")
        raise ReidError(f"one trial needs {total_cpus:g} CPUs and {total_gpus:g} GPUs{memory} but the cluster has "
                        f"{cluster_cpus:g} and {cluster_gpus:g}"
                        + (f" and {amount('memory', cluster_memory)}" if total_memory else "")
                        + "; lower --cpus-per-trial / ray.cpus_per_worker / ray.num_workers / ray.gpus_per_worker"
                        + (" / ray.memory_per_worker" if total_memory else ""))
    if max_concurrent:
        concurrent = max_concurrent
    elif not fits:
        print(f"[reid] one trial needs {total_cpus:g} CPUs and {total_gpus:g} GPUs, the cluster has "
              f"{cluster_cpus:g} and {cluster_gpus:g} now: 1 trial at a time until the autoscaler adds nodes "
              f"(pass --max-concurrent for more)", flush=True)
        concurrent = 1
    else:
        limits = [cluster_cpus / total_cpus] if total_cpus > 0 else []
        limits += [cluster_gpus / total_gpus] if total_gpus > 0 else []
        limits += [cluster_memory / total_memory] if total_memory > 0 else []
        derived = max(1, math.floor(min(limits) + 1e-9)) if limits else max(1, num_trials)
        concurrent = min(derived, max(1, num_trials))
    return TrialResources(per_trial=per_trial, total_cpus=total_cpus, max_concurrent=concurrent,
                          total_gpus=total_gpus, total_memory=total_memory)


def experiment_dir(out: str | Path, name: str) -> Path | str:
    """`<out>/<name>`: an absolute local path, or a URI kept whole (`s3://bucket/tune/<name>`)."""
    return storage.as_location(storage.join(out, name) if storage.is_uri(out) else Path(out, name).resolve())


def experiment_state(path: str | Path) -> str:
    """'new', 'restorable', or 'blocked' (a directory, or a bucket prefix, that is not a Tune experiment)."""
    from ray import tune

    if not [n for n in storage.list_dir(path) if n != RECORD]:  # the record alone: a start that never reached Tune
        return "new"
    return "restorable" if tune.Tuner.can_restore(str(path)) else "blocked"


def expect_state(path: str | Path, *, resume: bool) -> None:
    """`resume` needs a Tune experiment at `path`; a new experiment needs nothing there (ReidError otherwise)."""
    state = experiment_state(path)
    if resume and state != "restorable":
        raise ReidError(f"--resume: no Tune experiment to continue at {path}")
    if not resume and state != "new":
        raise ReidError(f"{path} already holds an experiment; pass --resume to continue it, or choose another "
                        f"--name / --out")


def open_experiment(path: str | Path, *, resume: bool, record: dict[str, Any]) -> None:
    """Before Ray starts: `expect_state`, then a new experiment gets its record (tune/experiment_record.py) and a
    resumed one must have been started with the settings of `record`."""
    expect_state(path, resume=resume)
    if resume:
        check_record(path, record)
    else:
        write_record(path, record)


@contextlib.contextmanager
def tune_console(verbose: bool) -> Iterator[None]:
    """Ray Tune's console for the fit inside: its own (verbose), or none beside the `[reid] trial` lines.

    `RunConfig(verbose=0)` silences Tune's result boxes and status tables, but its reporter of the default output
    (`RAY_AIR_NEW_OUTPUT=1`) still draws a box of the configuration when the experiment starts and points at a
    TensorBoard folder under /tmp/ray (ray 2.60, tune/experimental/output.py: `experiment_started` checks no
    verbosity). The previous reporter, chosen by `RAY_AIR_NEW_OUTPUT=0` for the fit, is silent at verbose 0.
    And Tune logs every failure of a trial with its whole traceback (`TUNE_PRINT_ALL_TRIAL_ERRORS`, 45 lines for
    a trial Ray's memory monitor killed) where tune/console.py prints one line with the reason and the error file.
    """
    if verbose:
        yield
        return
    with ray_runtime.environment({NEW_OUTPUT_ENV: "0", PRINT_TRIAL_ERRORS_ENV: "0"}):
        yield


def fit(trainable, *, path: str | Path, resume: bool, param_space: dict[str, Any], tune_config,
        failures: int, callbacks: list | None = None, verbose: bool = False, epochs: int | None = None):
    """Start the experiment at `path`, or continue it (`resume`); returns the ResultGrid.

    epochs: the sweep's train.epochs, where a scheduler may stop trials before it (their line says so).

    verbose: Ray Tune's own console (configuration and result boxes, status tables) beside the `[reid] trial`
    lines of tune/console.py; a resumed experiment keeps the verbosity of the command that started it (its
    RunConfig), this command's `verbose` choosing which of Tune's reporters prints it (`tune_console`)."""
    try:
        with tune_console(verbose):
            return _fit(trainable, path=path, resume=resume, param_space=param_space, tune_config=tune_config,
                        failures=failures, callbacks=callbacks, verbose=verbose, epochs=epochs)
    finally:
        ray_runtime.flush_worker_logs()  # the trials' held-back lines before the command's tables, not after


def _fit(trainable, *, path: str | Path, resume: bool, param_space: dict[str, Any], tune_config,
         failures: int, callbacks: list | None, verbose: bool, epochs: int | None):
    from ray import tune

    from tune import oom

    oom.install()  # a trial Ray's memory monitor kills is a failed trial, not the end of the sweep (tune/oom.py)
    expect_state(path, resume=resume)
    if resume:
        print(f"[reid] resuming the Tune experiment at {path}", flush=True)
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
        return fit_or_interrupt(tuner.fit)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(name=storage.name(path), storage_path=storage.parent(path),
                                  failure_config=tune.FailureConfig(max_failures=failures),
                                  callbacks=[*(callbacks or []), trial_line_callback(epochs)],
                                  verbose=2 if verbose else 0),
    )
    return fit_or_interrupt(tuner.fit)  # Ctrl-C: Tune's graceful stop, then KeyboardInterrupt (tune/interrupt.py)
