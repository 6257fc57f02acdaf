"""`reid tune ablation`: a paper's ablation table (tune/ablations/<table>.yaml) regenerated as a Tune grid.

Every row x seed of the spec is one Tune trial (`grid_search` over the rows and `--seeds N` seeds: `seed`, seed + 1,
...) running the same trainable as the sweeps (`tune.trial.run_trial`). Each trial selects its checkpoint on the
validation split (held-out training identities) and evaluates the test split once, keeping per-query AP and
first-match ranks; the table reports per row the mean over seeds with a 95% bootstrap interval, and for every pair
of rows the paper orders (the spec's `orders`, else every pair its numbers order) a paired bootstrap over queries and
seeds with a verdict holds / reversed / tie (tune.statistics). A row's config is, later winning: the base recipe,
the row's variant, the row's overrides, the size's overrides, then the command line's overrides.

- `--dataset synthetic` (default): base recipe `reid/configs/<method>-synthetic.yaml`; the rows' overrides that
  point at a real dataset (data.dataset / root / manifest / trial) or at a pre-training run (train.init_from) are
  left out, and the cross-dataset `test_config` is not applied (the row's `test_overrides` are).
- `--dataset paper`: base recipe = the method's packaged default (the paper's), every override kept; for a GPU
  node holding the prepared datasets.
- sizes: `smoke` = the tiny synthetic preset and 1 epoch (CI), `full` = the demo preset and the recipe's epochs
  (`--epochs N` runs a reduced full and says so in the table).
- `out` may be a URI (s3://bucket/ablations): the Tune experiment, the trials' runs (with their test.json),
  results.json and the table files then live in the bucket (reid.storage).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reid import storage
from reid.config import ConfigError, ExperimentConfig, absolute_paths, build_config, validate_overrides
from reid.config.errors import format_validation_error
from reid.data.synth.presets import SUITES
from reid.errors import ReidError
from tune.console import plural

SPEC_DIR = Path(__file__).parent / "ablations"
Metric = Literal["mAP", "mINP", "R1", "R5", "R10", "R20"]
REAL_DATA_KEYS = ("data.dataset", "data.root", "data.manifest", "data.trial", "train.init_from")
SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"data.root": "data/synthetic-tiny", "data.synth_preset": "tiny", "train.epochs": 1,
              "train.eval_every": 1, "train.keep_checkpoints": 1},
    "full": {"data.root": "data/synthetic-demo", "data.synth_preset": "demo"},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AblationRow(_Strict):
    name: str
    variant: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    test_overrides: dict[str, Any] | None = None
    paper: dict[Metric, float] = Field(default_factory=dict)


class AblationSpec(_Strict):
    table: str
    method: str
    title: str
    paper_dataset: str
    metrics: list[Metric]
    test_config: str | None = None
    # set for a probe of our own reading rather than a table of the paper: what it tests; its `orders` are then our
    # hypotheses, and the table says so
    probe: str | None = None
    # dotted config keys whose resolved value each row ran with goes into the table ("which form was run")
    show: list[str] = Field(default_factory=list)
    # the paper's claims as [better row, worse row] pairs of row names, tested with the paired bootstrap; empty =
    # every pair of rows whose paper numbers (primary metric) differ
    orders: list[tuple[str, str]] = Field(default_factory=list)
    # [full method row, its own baseline row]: the table's headline comparison (also one of the orders)
    headline: tuple[str, str] | None = None
    rows: list[AblationRow]


def list_specs() -> list[str]:
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


def load_spec(name_or_path: str) -> AblationSpec:
    path = Path(name_or_path)
    if not path.is_file():
        path = SPEC_DIR / f"{name_or_path.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        raise ReidError(f"unknown ablation table '{name_or_path}'; tables: {', '.join(list_specs())}")
    try:
        spec = AblationSpec.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        raise ConfigError(f"ablation spec {path}:\n{format_validation_error(exc, AblationSpec)}") from None
    names = [r.name for r in spec.rows]
    if len(set(names)) != len(names):
        raise ConfigError(f"ablation spec {path}: row names must be unique")
    named = [n for pair in [*spec.orders, *([spec.headline] if spec.headline else [])] for n in pair]
    unknown = sorted({n for n in named if n not in names})
    if unknown:
        raise ConfigError(f"ablation spec {path}: orders / headline name unknown rows {unknown}; rows: {names}")
    return spec


def row_overrides(spec: AblationSpec, row: AblationRow, dataset: str, size: str, user: dict[str, Any],
                  epochs: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"variant": row.variant} if row.variant else {}
    out.update({k: v for k, v in row.overrides.items() if dataset == "paper" or k not in REAL_DATA_KEYS})
    if dataset == "synthetic":
        out.update(SIZES[size])
    elif size == "smoke":
        out.update({k: v for k, v in SIZES["smoke"].items() if k.startswith("train.")})
    if epochs:
        out.update({"train.epochs": epochs, "train.eval_every": min(epochs, out.get("train.eval_every", epochs))})
    out.update(user)
    return out


def base_config(spec: AblationSpec, dataset: str, config_files: list[str], user: list[str]) -> ExperimentConfig:
    files = ([f"{spec.method}-synthetic"] if dataset == "synthetic" else []) + list(config_files)
    return build_config(spec.method, files, user)


def hardware_line() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({platform.machine()}, {platform.system()}), {gpu}"


def run_ablation(spec: AblationSpec, *, dataset: str = "synthetic", size: str = "smoke",
                 config_files: list[str] | None = None, user_overrides: list[str] | None = None,
                 out: Path | str = Path("runs/ablations"), name: str | None = None, resume: bool = False,
                 epochs: int | None = None, cpus_per_trial: float | None = None, max_concurrent: int | None = None,
                 num_cpus: float | None = None, max_failures: int = 1, hardware: str | None = None,
                 rows: list[int] | None = None, seeds: int = 3, command: str | None = None,
                 verbose: bool = False) -> dict[str, Any]:
    """Run rows x seeds as a Tune grid; returns the recorded results (also written as results.json, the table and
    its JSON sidecar, in `<out>/<name>`, a local directory or a URI). `command` is the command line that regenerates
    the table (recorded in it)."""
    from ray import tune

    from reid.config.loader import parse_override
    from reid.training.api import manifest_path_for
    from tune.experiment_record import experiment_record
    from tune.runner import experiment_dir, fit, init_ray, open_experiment, trial_resources
    from tune.trial import run_trial

    user = dict(parse_override(o) for o in user_overrides or [])
    base = base_config(spec, dataset, config_files or [], user_overrides or [])
    # keyed by the row's place in the table, whichever rows are chosen: the key is what a trial's config records, so
    # a resumed experiment can be checked against the rows this command asks for (check_grid)
    chosen = {f"{i:02d}": spec.rows[i] for i in (rows if rows is not None else range(len(spec.rows)))}
    grid: dict[str, dict[str, Any]] = {}
    for key, row in chosen.items():
        overrides = row_overrides(spec, row, dataset, size, user, epochs)
        try:
            resolved = validate_overrides(base, overrides)  # every row's config is valid before any trial starts
        except ConfigError as exc:
            raise ConfigError(f"ablation {spec.table}, row '{row.name}': {exc}") from None
        test_config = spec.test_config if dataset == "paper" else None
        grid[key] = {"name": row.name, "overrides": overrides, "test_overrides": row.test_overrides,
                            "test_config": test_config, "settings": shown_settings(spec, resolved)}
    first = absolute_paths(validate_overrides(base, next(iter(grid.values()))["overrides"]))
    # paths inside the rows must be absolute too: trials run in their own working directory
    for g in grid.values():
        g["overrides"] = {k: (str(Path(v).resolve()) if k in ("data.root", "data.manifest", "train.init_from")
                              and isinstance(v, str) and not storage.is_uri(v) else v)
                          for k, v in g["overrides"].items()}
    exp_dir = experiment_dir(out, name or f"{spec.table}-{dataset}-{size}")
    prefix = storage.name(exp_dir)
    if seeds < 1:
        raise ReidError(f"--seeds must be at least 1, got {seeds}")
    seed_list = [base.seed + k for k in range(seeds)]
    settings = {"table": spec.table, "--dataset": dataset, "--size": size, "--epochs": epochs,
                "rows": [g["name"] for g in grid.values()], "seeds": seed_list}
    trial_base = absolute_paths(base).model_dump(mode="json")
    open_experiment(exp_dir, resume=resume,  # before Ray starts: a resume as it started (tune/experiment_record.py)
                    record=experiment_record("ablation", trial_base, settings))
    manifest = manifest_path_for(first)  # generate the (shared) synthetic set once, before the trials
    init_ray(first, num_cpus, manifest=manifest, experiment=exp_dir)
    res = trial_resources(first, cpus_per_trial, max_concurrent, len(grid) * seeds)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=trial_base, run_prefix=prefix, runs_dir=storage.join(exp_dir, "runs"),
                             rows=grid),
        res.per_trial)
    print(f"[reid] ablation {spec.table} ({dataset}, {size}): {plural(len(grid), 'row')} x {plural(seeds, 'seed')}, "
          f"{res.max_concurrent} at a time, {res.each()} each", flush=True)
    start = time.time()
    results = fit(trainable, path=exp_dir, resume=resume,
                  param_space={"row": tune.grid_search(list(grid)), "seed": tune.grid_search(seed_list)},
                  tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=res.max_concurrent),
                  failures=max_failures, verbose=verbose)
    check_grid(spec, results, grid, seed_list, exp_dir)
    recorded = collect(spec, results, grid, storage.join(exp_dir, "runs"), prefix)
    recorded["untrained"] = untrained_reference(spec, base, grid)
    recorded["meta"] = describe_run(spec, first, dataset, size, epochs, hardware, time.time() - start,
                                    config_files or [])
    recorded["meta"]["seeds"] = ", ".join(map(str, seed_list))
    recorded["data"] = data_record(first, dataset)
    recorded["wall_time_s"] = round(time.time() - start, 1)
    recorded["command"] = command
    storage.write_text(storage.join(exp_dir, "results.json"), json.dumps(recorded, indent=2))
    render(spec, recorded, storage.join(exp_dir, "table"))
    return recorded


def check_grid(spec: AblationSpec, results, grid: dict[str, dict[str, Any]], seeds: list[int],
               exp_dir: Path | str) -> None:
    """The experiment's trials are the rows x seeds this command asks for. Tune resumes an experiment with the grid
    it started with: `--resume --seeds 5` of a 3-seed smoke table recorded `seeds: 0, 1, 2, 3, 4` over 3 seeds'
    results (2026-12-07), and another `--rows` could have put one row's results under another's name."""
    ran = {(str(c.get("row")), c.get("seed")) for c in ((r.config or {}) for r in results)}
    asked = {(key, seed) for key in grid for seed in seeds}
    if ran == asked:
        return

    def described(pairs: set[tuple[str, Any]]) -> str:
        keys = sorted({k for k, _ in pairs})
        names = [spec.rows[int(k)].name if k.isdigit() and int(k) < len(spec.rows) else k for k in keys]
        return f"rows {', '.join(names)} x seeds {', '.join(str(s) for s in sorted({s for _, s in pairs}))}"

    raise ReidError(f"the experiment at {exp_dir} holds {described(ran)}; this command asks for {described(asked)}. "
                    f"--resume continues an experiment as it started: give its --rows / --seeds (nothing was written), "
                    f"or another --name for a new one")


def untrained_reference(spec: AblationSpec, base: ExperimentConfig, grid: dict[str, dict[str, Any]]
                        ) -> dict[str, Any]:
    """The test split scored by the untrained model (random weights, seed `base.seed`) of the headline's baseline row
    (else the first row), evaluated once in this process after the trials: the floor a row must clear to count as
    having learned (issue 17: a recipe's baseline row reaches >= 3x its mAP)."""
    from reid.evaluation.run.evaluate import evaluate

    wanted = spec.headline[1] if spec.headline else None
    row = next((g for g in grid.values() if g["name"] == wanted), next(iter(grid.values())))
    cfg = absolute_paths(validate_overrides(base, row["overrides"]))
    metrics = evaluate(cfg, None, progress=False).metrics
    return {"row": row["name"], "seed": base.seed,
            **{k: metrics[k] for k in ("mAP", "R1", "valid_queries") if k in metrics}}


def shown_settings(spec: AblationSpec, cfg: ExperimentConfig) -> str | None:
    """The resolved values of the spec's `show` keys for one row, e.g. "model.paf=abs, model.part_pool=sum"."""
    if not spec.show:
        return None
    tree = cfg.model_dump(mode="json")
    values = []
    for key in spec.show:
        node: Any = tree
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        values.append(f"{key.split('.')[-1]}={node}")
    return ", ".join(values)


def collect(spec: AblationSpec, results, grid: dict[str, dict[str, Any]], runs_dir: Path | str | None = None,
            run_prefix: str = "") -> dict[str, Any]:
    """Row name -> our metrics: per seed the test split of the checkpoint chosen on validation (`test/*`; a run
    without one falls back to its last validation, marked "validation"), and the mean over the seeds. With
    `runs_dir`, each trial's per-query AP / first-match ranks (its run's test.json) go into "per_query"."""
    keys = ("mAP", "mINP", "R1", "R5", "R10", "R20")
    rows: dict[str, Any] = {}
    per_query: dict[str, dict[str, Any]] = {}
    query_ids: list[str] | None = None
    for r in results:
        config = r.config or {}
        row_id = config.get("row")
        if row_id not in grid:
            continue
        name, seed = grid[row_id]["name"], str(config.get("seed", ""))
        m = r.metrics or {}
        tested = any(f"test/{k}" in m for k in keys)
        ours = {k: m.get(f"test/{k}" if tested else f"val/{k}") for k in keys}
        entry = {**{k: v for k, v in ours.items() if v is not None}, "epochs": m.get("epoch"),
                 "trial_id": m.get("trial_id"), "split": "test" if tested else "validation",
                 "queries": m.get("test/valid_queries" if tested else "val/valid_queries"),
                 "status": "ERROR" if r.error else "TERMINATED",
                 "error": str(r.error).splitlines()[0] if r.error else None}
        row = rows.setdefault(name, {"settings": grid[row_id].get("settings"), "seeds": {}})
        row["seeds"][seed] = entry
        doc = _test_file(runs_dir, run_prefix, m.get("trial_id")) if tested and not r.error else None
        if doc is not None:
            pq = doc["per_query"]
            if query_ids is None:
                query_ids = pq["tracklet_id"]
            if pq["tracklet_id"] != query_ids:
                raise ReidError(f"ablation {spec.table}: row '{name}' seed {seed} was tested on other queries than "
                                "the other trials; the paired statistics need one test split")
            per_query.setdefault(name, {})[seed] = {"ap": pq["ap"], "first_match_rank": pq["first_match_rank"]}
    for row in rows.values():
        ok = [e for e in row["seeds"].values() if e["status"] != "ERROR"]
        row.update({k: sum(e[k] for e in ok) / len(ok) for k in keys if ok and all(k in e for e in ok)})
        row["queries"] = max((e["queries"] or 0 for e in ok), default=None)
        row["split"] = ok[0]["split"] if ok else None
        row["status"] = "TERMINATED" if ok else "ERROR"
        errors = [e["error"] for e in row["seeds"].values() if e["error"]]
        row["error"] = errors[0] if errors else None
    out: dict[str, Any] = {"table": spec.table, "rows": rows}
    if per_query:
        out["query_ids"] = query_ids
        out["per_query"] = per_query
    return out


def _test_file(runs_dir: Path | str | None, run_prefix: str, trial_id: str | None) -> dict[str, Any] | None:
    """The test.json of a trial's run (`<runs_dir>/<prefix>-<trial id>/test.json`, local or a URI), None when
    absent."""
    if runs_dir is None or not trial_id:
        return None
    path = storage.join(runs_dir, f"{run_prefix}-{trial_id}", "test.json")
    return json.loads(storage.read_text(path)) if storage.is_file(path) else None


def describe_run(spec: AblationSpec, cfg: ExperimentConfig, dataset: str, size: str, epochs: int | None,
                 hardware: str | None, seconds: float, config_files: list[str] | None = None) -> dict[str, str]:
    import ray
    import torch

    if dataset == "synthetic":
        suite = cfg.data.synth_preset in SUITES
        strength = f" strength {cfg.data.synth_strength:g}" if suite else ""
        data = f"synthetic (reid synth preset '{cfg.data.synth_preset}'{strength}, {_relative(cfg.data.root)})"
        recipe = f"reid/configs/{spec.method}-synthetic.yaml"
    else:
        data = f"{cfg.data.dataset} ({_relative(cfg.data.root)})"
        recipe = f"reid/configs/{spec.method}.yaml"
    recipe += "".join(f" + {f}" for f in config_files or [])
    label = size if not epochs else f"{size}, reduced to {epochs} epoch(s)"
    meta = {
        "our dataset": data,
        "size": f"{label}: {cfg.train.epochs} epoch(s), {cfg.data.height}x{cfg.data.width}, T={cfg.data.seq_len}, "
                f"recipe {recipe} (+ row variant and overrides)",
        "hardware": hardware or hardware_line(),
        "software": f"torch {torch.__version__}, ray {ray.__version__}",
        "wall time": f"{seconds / 60:.1f} min, {time.strftime('%Y-%m-%d')}",
    }
    if dataset == "synthetic":
        meta["left out on synthetic"] = ("row overrides " + ", ".join(REAL_DATA_KEYS)
                                         + (f"; cross-dataset test config {spec.test_config}" if spec.test_config
                                            else ""))
    return meta


def data_record(cfg: ExperimentConfig, dataset: str) -> dict[str, Any]:
    """What the rows were measured on, as fields (results.json and the sidecar's "data"): {"source": "synthetic",
    "preset": ..., "strength": the suite's nuisance strength (None for a preset that is not a suite)} or
    {"source": "paper", "dataset": ...}; `reid tune dose-response` reads the strength from here."""
    if dataset != "synthetic":
        return {"source": "paper", "dataset": cfg.data.dataset}
    suite = cfg.data.synth_preset in SUITES
    return {"source": "synthetic", "preset": cfg.data.synth_preset,
            "strength": float(cfg.data.synth_strength) if suite else None}


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def render(spec: AblationSpec, recorded: dict[str, Any], stem: str | Path) -> Path | str:
    """table.md + table.csv + the JSON sidecar table.json from recorded results (a dict as written to
    results.json); no training needed. `stem` (".../table") is a local path or a URI; returns the .md's."""
    from tune.evidence import sidecar, table_statistics
    from tune.report import ablation_table, primary_metric, write_csv

    ours = {name: {k: v for k, v in row.items() if k in ("mAP", "mINP", "R1", "R5", "R10", "R20")}
            for name, row in recorded.get("rows", {}).items() if row.get("status", "TERMINATED") != "ERROR"}
    meta = dict(recorded.get("meta", {}))
    queries = sorted({int(r["queries"]) for r in recorded.get("rows", {}).values() if r.get("queries")})
    if queries:
        meta["our test split"] = (f"{'/'.join(map(str, queries))} valid queries: one query moves R1 by "
                                  f"{100.0 / queries[0]:.1f} points")
    settings = {name: row["settings"] for name, row in recorded.get("rows", {}).items() if row.get("settings")}
    if recorded.get("command"):
        meta["regenerate with"] = f"`{recorded['command']}`"
    floor = recorded.get("untrained") or {}
    if floor.get("mAP"):
        ratios = ", ".join(f"{n}: {r['mAP'] / floor['mAP']:.1f}x" for n, r in ours.items() if r.get("mAP"))
        meta["untrained reference"] = (f"test mAP {floor['mAP']:.1f} (R1 {floor.get('R1', float('nan')):.1f}) with "
                                       f"random weights (config of row '{floor['row']}', seed {floor['seed']}); "
                                       f"rows' mean mAP as a multiple of it: {ratios}")
    stats = table_statistics(spec, recorded, primary_metric(spec.metrics, [{"paper": r.paper} for r in spec.rows]))
    md, csv_rows = ablation_table(spec, ours, meta, settings, stats)
    errors = {n: r.get("error") for n, r in recorded.get("rows", {}).items() if r.get("status") == "ERROR"}
    if errors:
        md += "\nRows that failed: " + "; ".join(f"{n}: {e}" for n, e in errors.items()) + "\n"
    storage.write_text(f"{stem}.md", md)
    write_csv(csv_rows, f"{stem}.csv")
    storage.write_text(f"{stem}.json", json.dumps(sidecar(spec, recorded, stats), indent=2) + "\n")
    return storage.as_location(f"{stem}.md")
