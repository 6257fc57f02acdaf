"""`reid tune search`: an Optuna (TPE, seeded) sweep with ASHA early stopping over a search space.

Output in the sweep directory `<out>/<name>` (default name `<method>-<space>`, no timestamp, so `--resume` finds it;
`<out>` a local directory or a URI, s3://bucket/tune: everything below then lives in the bucket, reid.storage):
- the Tune experiment (trial directories, `experiment_state-*.json`, `tuner.pkl`);
- `runs/<name>-<trial id>/`: each trial's training run (checkpoints, metrics.jsonl);
- `best_config.yaml`: the best trial's resolved config, accepted by `reid train --config`;
- `results.csv`, `results.md`: one row per trial; `objective.png`: the objective against each searched parameter.

The objective is `checkpoint_score` (the last validation mAP, present every epoch, -1 before the first
validation), maximised; ASHA compares trials on it at equal `epoch` (the epoch is the time axis, so a restored
trial that resumes its run mid-way keeps its place).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid import storage
from reid.config import ExperimentConfig, absolute_paths, validate_overrides
from reid.errors import ReidError
from tune.console import plural
from tune.experiment_record import experiment_record
from tune.runner import experiment_dir, fit, init_ray, open_experiment, trial_resources
from tune.spaces import SearchSpace, validate_space
from tune.trial import run_trial

METRIC, MODE = "checkpoint_score", "max"


@dataclass
class SearchOptions:
    trials: int
    out: Path | str = Path("runs/tune")  # a local directory or a URI (s3://bucket/tune)
    name: str | None = None
    resume: bool = False
    seed: int = 0
    max_concurrent: int | None = None
    cpus_per_trial: float | None = None
    max_failures: int = 2
    grace_period: int | None = None
    reduction_factor: int = 2
    num_cpus: float | None = None  # for a local cluster started here
    verbose: bool = False  # Ray Tune's own console besides the [reid] lines (tune/console.py)


@dataclass
class SearchOutcome:
    sweep_dir: Path | str  # an absolute local path, or the URI of the sweep
    best_config: Path | str
    best_overrides: dict[str, Any]
    best_score: float
    rows: list[dict[str, Any]]
    errors: int


def sweep_name(cfg: ExperimentConfig, space: SearchSpace, opts: SearchOptions) -> str:
    return opts.name or f"{cfg.method}-{space.name}"


def search_record(base: ExperimentConfig, space: SearchSpace, opts: SearchOptions) -> dict[str, Any]:
    """What a resumed sweep must share with its start (tune/experiment_record.py): the config, the space, --seed."""
    settings: dict[str, Any] = {"--space": space.name, "--seed": opts.seed}
    settings.update({f"space {k}": dim.describe() for k, dim in space.params.items()})
    settings.update({f"space {k}": f"{factor} x {source}" for k, (factor, source) in space.tied.items()})
    settings.update({f"space {k}": v for k, v in space.fixed.items()})
    return experiment_record("search", base.model_dump(mode="json"), settings)


def run_search(cfg: ExperimentConfig, space: SearchSpace, opts: SearchOptions,
               callbacks: list | None = None) -> SearchOutcome:
    """Validate the space against `cfg` (before Ray starts), run or resume the sweep, write the outputs."""
    import optuna
    from ray import tune

    from reid.training.api import manifest_path_for
    from tune.asha import FinishingASHA, RungState  # imports ray.tune: not at `reid tune --help`
    from tune.epoch_optuna import EpochOptunaSearch

    if not opts.verbose:  # its INFO line "A new study created in memory with name: optuna" says nothing here
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    if opts.trials < 1:
        raise ReidError(f"--trials must be at least 1, got {opts.trials}")
    validate_space(space, cfg)
    base = absolute_paths(cfg)
    sweep_dir = experiment_dir(opts.out, sweep_name(cfg, space, opts))
    prefix = storage.name(sweep_dir)
    open_experiment(sweep_dir, resume=opts.resume, record=search_record(base, space, opts))  # before data, Ray
    manifest = manifest_path_for(base)  # generate the synthetic set once here, not in every trial at the same time
    init_ray(base, opts.num_cpus, manifest=manifest, experiment=sweep_dir)
    res = trial_resources(base, opts.cpus_per_trial, opts.max_concurrent, opts.trials)
    epochs = base.train.epochs
    grace = min(epochs, opts.grace_period or base.train.eval_every)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=base.model_dump(mode="json"), run_prefix=prefix,
                             runs_dir=storage.join(sweep_dir, "runs"), tied=space.tied, fixed=space.fixed),
        res.per_trial)
    asha = FinishingASHA(time_attr="epoch", max_t=epochs, grace_period=grace, reduction_factor=opts.reduction_factor)
    tune_config = tune.TuneConfig(
        metric=METRIC, mode=MODE, num_samples=opts.trials, max_concurrent_trials=res.max_concurrent,
        search_alg=EpochOptunaSearch(seed=opts.seed),  # intermediate values at their epoch, resumed or not
        scheduler=asha,
    )
    print(f"[reid] sweep {prefix}: {plural(opts.trials, 'trial')} of {cfg.method} over {', '.join(space.params)}; "
          f"{res.max_concurrent} at a time, {res.each()} each", flush=True)
    results = fit(trainable, path=sweep_dir, resume=opts.resume, param_space=space.to_tune(),
                  tune_config=tune_config, failures=opts.max_failures, callbacks=[*(callbacks or []), RungState(asha)],
                  verbose=opts.verbose, epochs=epochs)  # RungState: ASHA's rungs kept with the experiment
    return write_search_outputs(cfg, space, results, sweep_dir, opts.trials)


def resolution_note(scores: list[float], best: float, queries: int | None) -> str | None:
    """A line when the validation split cannot rank the best trial first: several trials share its score, or it
    leads the next by less than one validation query can move mAP (100 / queries points: each query's average
    precision is between 0 and 100, and mAP is their mean). None otherwise."""
    tied = sum(1 for s in scores if abs(s - best) < 1e-6)
    on = f" on {queries} validation queries" if queries else ""
    more = "more validation identities (data.val_identities) or epochs separate them"
    if tied > 1:
        return (f"{tied} trials share the best {METRIC} ({best:.2f}){on}: the sweep cannot tell them apart, and "
                f"best_config.yaml holds one of them; {more}")
    others = sorted((s for s in scores if s < best - 1e-6), reverse=True)
    if queries and others and best - others[0] < 100.0 / queries:
        return (f"the best trial leads the next by {best - others[0]:.2f} points, less than one of the {queries} "
                f"validation queries can move mAP ({100.0 / queries:.1f}); {more}")
    return None


def write_search_outputs(cfg: ExperimentConfig, space: SearchSpace, results, sweep_dir: Path | str,
                         trials: int) -> SearchOutcome:
    """best_config.yaml, results.csv / results.md and objective.png of a sweep whose fit ended (an interrupted one
    raises KeyboardInterrupt before: tune/interrupt.py), in `sweep_dir` (a local directory or a URI)."""
    import yaml

    from tune.report import plot_objective, search_rows, write_table

    name = storage.name(sweep_dir)
    rows = search_rows(results, list(space.params), METRIC)
    if not any(r.get(METRIC) is not None for r in rows):
        raise ReidError(f"no trial of {name} reported '{METRIC}' "
                        f"({sum(1 for r in rows if r['status'] == 'ERROR')} errored; see the trial errors above, "
                        f"or continue an interrupted sweep with --resume)")
    best = results.get_best_result(metric=METRIC, mode=MODE)
    best_overrides = space.overrides(best.config)
    best_cfg = validate_overrides(cfg, best_overrides)
    best_path = storage.as_location(storage.join(sweep_dir, "best_config.yaml"))
    storage.write_text(best_path, yaml.safe_dump(best_cfg.model_dump(mode="json"), sort_keys=False))  # = save_config
    write_table(rows, storage.join(sweep_dir, "results"), title=f"Sweep {name}: {cfg.method}, objective {METRIC} "
                f"(last validation mAP, %)")
    plot_objective(rows, space, METRIC, storage.join(sweep_dir, "objective.png"))
    errors = sum(1 for r in rows if r["status"] == "ERROR")
    unfinished = sum(1 for r in rows if r["status"] == "UNFINISHED")
    if unfinished:
        print("[reid] the sweep stopped before every trial finished (interrupted?); continue it with --resume",
              flush=True)
    elif len(rows) != trials:  # a resumed experiment keeps the number of trials it was started with
        print(f"[reid] note: the experiment holds {plural(len(rows), 'trial')}; --trials sets how many a new "
              f"experiment runs, a resumed one keeps its own (another --name starts a new one)", flush=True)
    print(f"[reid] best trial {best.metrics.get('trial_id')}: {METRIC} {best.metrics.get(METRIC):.2f} with "
          + ", ".join(f"{k}={v}" for k, v in best_overrides.items()), flush=True)
    queries = best.metrics.get("val/valid_queries")
    note = resolution_note([r[METRIC] for r in rows if r.get(METRIC) is not None], float(best.metrics[METRIC]),
                           int(queries) if queries else None)
    if note:
        print(f"[reid] note: {note}", flush=True)
    use = (f"reid train --config {best_path}" if not storage.is_uri(best_path) else
           "copy it to a local file for reid train --config")
    print(f"[reid] best config: {best_path} ({use})", flush=True)
    return SearchOutcome(sweep_dir=sweep_dir, best_config=best_path, best_overrides=best_overrides,
                         best_score=float(best.metrics.get(METRIC, float("nan"))), rows=rows, errors=errors)
