"""`reid tune`: Ray Tune + Optuna sweeps (`search`), the papers' ablation tables (`ablation`) and an ablation
headline's gap against a suite's strength (`dose-response`), and whether a temporal-attention model weights lost
frames down (`frame-weights`)."""

from __future__ import annotations

import argparse
import os
import sys

from reid.commands.common import add_config_arguments, setup_logging
from reid.errors import ReidError

DESCRIPTION = """Hyper-parameter sweeps and ablation tables, on Ray Tune.

  reid tune list                                                     # search spaces and ablation tables
  reid tune search adfta --space adfta --trials 16 --config adfta-synthetic ray.num_workers=0
  reid tune search asanet --space my-space.yaml --trials 32 --config asanet-mars ray.num_workers=2
  reid tune search adfta --space adfta --trials 16 --config adfta-synthetic --resume   # continue it
  reid tune search adfta --space adfta --trials 16 --config adfta-synthetic --out s3://my-bucket/tune   # in a bucket
  reid tune ablation adfta-table4 --smoke --seeds 1                   # CI size: tiny synthetic set, 1 epoch
  reid tune ablation astpn-fig5 --full --seeds 3 --results-md results/astpn-fig5-synthetic-full.md
  reid tune ablation adfta-table4 --full --dataset paper ray.num_workers=4 ray.use_gpu=true   # GPU node
  reid tune dose-response results/fcnta-components-quality-s{0,0.2,0.5}.json --out results/dose-response.png
  reid tune frame-weights runs/ablations/NAME/runs/NAME-TRIAL_0000{0,2,4} --out results/frame-weights-X.json

Search: Optuna (TPE, --seed) proposes values, ASHA stops weak trials early on the last validation mAP (held-out
training identities, data.val_identities; never the test split); the best config is written as YAML that
`reid train --config` accepts. Ablation: every row x seed of the paper's table is a trial; the table shows the
paper's number beside ours (mean over seeds, 95% CI) and, for every pair of rows the paper orders, a paired bootstrap
verdict holds / reversed / tie; a JSON sidecar (table.json) goes with it. Dose-response: the headline gap of one
table run on a suite at several strengths (one sidecar each) against the strength, with its 95% CI, as a plot and a
data file. Frame-weights: per frame, a trained model's temporal weight against how much of the target the frame
shows (keypoints), with a verdict on whether lost frames are weighted down.

--out may be a URI (s3://, gs://): the Tune experiment, every trial's run (config, metrics, checkpoints), the tables
and plots then live there (an S3-compatible server that is not AWS is named by AWS_ENDPOINT_URL), and --resume
continues the experiment from there. See docs/tune.md and docs/operations.md (storage)."""


class _Intermixed(argparse.ArgumentParser):
    """Dotted overrides may come before or after the options (`... --smoke ray.num_workers=0`)."""

    _busy = False

    def parse_known_args(self, args=None, namespace=None):
        if self._busy:  # parse_known_intermixed_args calls back into parse_known_args
            return super().parse_known_args(args, namespace)
        self._busy = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._busy = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="tune_command", metavar="{search,ablation,dose-response,frame-weights,list}",
                                parser_class=_Intermixed)
    sub.required = True
    sub.add_parser("list", help="list the built-in search spaces and ablation tables")

    s = sub.add_parser("search", help="Optuna + ASHA sweep over a search space")
    s.add_argument("method", help="method to tune (baseline, adfta, asanet, posetap, fcnta, astpn)")
    s.add_argument("--space", required=True, help="built-in space name or a YAML file (see `reid tune list`)")
    s.add_argument("--trials", type=int, required=True, help="number of trials (Optuna samples)")
    add_config_arguments(s)
    _common(s, default_out="runs/tune")
    s.add_argument("--seed", type=int, default=0, help="Optuna sampler seed")
    s.add_argument("--grace-period", type=int, help="ASHA: epochs before a trial can be stopped "
                   "(default train.eval_every)")
    s.add_argument("--reduction-factor", type=int, default=2, help="ASHA reduction factor")

    a = sub.add_parser("ablation", help="regenerate a paper's ablation table")
    a.add_argument("table", help="ablation table (tune/ablations/<table>.yaml) or a spec file")
    size = a.add_mutually_exclusive_group()
    size.add_argument("--smoke", dest="size", action="store_const", const="smoke",
                      help="tiny synthetic set, 1 epoch per row (default)")
    size.add_argument("--full", dest="size", action="store_const", const="full",
                      help="the method's synthetic recipe on the demo set (or the paper recipe with --dataset paper)")
    a.set_defaults(size="smoke")
    a.add_argument("--dataset", choices=["synthetic", "paper"], default="synthetic",
                   help="synthetic (default) or the paper's dataset and recipe (prepared data needed)")
    a.add_argument("--epochs", type=int, help="run a reduced size with this many epochs per row (stated in the table)")
    a.add_argument("--rows", help="comma-separated row indices to run (default all)")
    a.add_argument("--seeds", type=int, default=3, help="seeds per row (seed, seed + 1, ...; default 3): each row x "
                   "seed is a trial, and the statistics resample over them")
    a.add_argument("--hardware", help="hardware description for the table (default: detected)")
    a.add_argument("--from-results", metavar="JSON", help="only render the table from a recorded results.json "
                   "(a path or a URI, s3://...: the table files are written beside it)")
    a.add_argument("--results-md", metavar="PATH", help="also copy the Markdown table here (e.g. results/<table>.md) "
                   "and its JSON sidecar beside it (results/<table>.json); a URI (s3://...) is written through "
                   "pyarrow.fs")
    add_config_arguments(a)
    _common(a, default_out="runs/ablations")

    d = sub.add_parser("dose-response", help="plot an ablation headline's gap against the suite strength",
                       description="Reads the sidecars of one ablation table run on a phenomenon suite at several "
                       "strengths (`reid tune ablation ... --results-md X.md` writes X.json) and plots each headline "
                       "gap (mAP of the better row - the worse, with its paired 95% bootstrap CI) against the "
                       "strength; writes the PNG and a JSON data file. Nothing is retrained or recomputed.")
    d.add_argument("sidecars", nargs="+", metavar="SIDECAR", help="ablation sidecars (results/<table>.json; paths "
                   "or URIs), one per strength: same table, rows, suite, size and seeds")
    d.add_argument("--out", default="results/dose-response.png",
                   help="the plot, a local file (default results/dose-response.png)")
    d.add_argument("--data", help="the data file, a local file (default: --out with .json)")

    f = sub.add_parser("frame-weights", help="does a temporal-attention model weight lost frames down?",
                       description="Runs trained temporal-attention models (one config, one run per seed: e.g. an "
                       "ablation row's runs/ablations/<name>/runs/<name>-<trial>) over the test tracklets of their "
                       "data, and compares each frame's temporal weight (relative to its clip's mean) with the "
                       "target's visibility in that frame (share of keypoints shown; 0 = lost). Writes a JSON "
                       "(shown - lost relative weight and the weight-visibility rank correlation, each with a 95% "
                       "bootstrap CI over seeds and tracklets and a verdict) and a plot beside it. Needs keypoints "
                       "(the synthetic suites have them). In this process; no Ray.")
    f.add_argument("runs", nargs="+", metavar="RUN|KEY=VALUE", help="run directories (holding config.yaml; paths "
                   "or URIs), one "
                   "per seed, and dotted overrides of their config (data.root=... data.synth_strength=...: check on "
                   "another strength of the suite)")
    f.add_argument("--out", required=True, help="the JSON, a local file (the plot is written beside it, .png)")
    f.add_argument("--limit", type=int, default=0, help="only the first N test tracklets with keypoints "
                   "(default all)")


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", default=default_out, help=f"experiment root: a local directory or a URI, s3://bucket/dir "
                   f"or gs://..., where the experiment, the trials' runs and the outputs are written "
                   f"(default {default_out})")
    p.add_argument("--name", help="experiment name (default derived from the method/table; no timestamp)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment of the same name "
                   "(in --out, local or a URI), with its own number of trials; refused when the settings differ from "
                   "its start's (config keys other than where trials run, space, seed, rows, seeds)")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs reserved per trial process (fractions allowed; "
                   "default ray.cpus_per_worker for in-process trials)")
    p.add_argument("--max-concurrent", type=int, help="cap on concurrent trials (default: derived from CPUs and "
                   "GPUs; a new experiment only, --resume keeps its own)")
    p.add_argument("--num-cpus", type=float, help="CPUs of the local Ray cluster started here (default: all)")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial (default 2)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="debug logging and Ray Tune's own console (configuration / result boxes, status tables) "
                        "besides the [reid] trial lines")


SMALL_MACHINE_CPUS = 8


def small_machine_overrides(files: list[str], overrides: list[str]) -> list[str]:
    """On a small local machine, trials train in-process (`ray.num_workers=0`) unless the user chose otherwise:
    Ray Train workers per trial only add start-up cost and contention when a trial has a core or less."""
    from reid.config.loader import read_yaml

    keys = {o.split("=", 1)[0].strip() for o in overrides}
    if keys & {"ray.num_workers", "ray.address"} or os.environ.get("RAY_ADDRESS"):
        return overrides
    for f in files:
        ray_section = read_yaml(f).get("ray") or {}
        if "num_workers" in ray_section or ray_section.get("address"):
            return overrides
    if (os.cpu_count() or 1) >= SMALL_MACHINE_CPUS:
        return overrides
    print(f"[reid] {os.cpu_count()} CPUs here: trials train in-process (ray.num_workers=0); pass ray.num_workers=N "
          f"for Ray Train workers per trial", flush=True)
    return ["ray.num_workers=0", *overrides]


def run(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "verbose", False))
    handler = {"list": _list, "search": _search, "ablation": _ablation,
               "dose-response": _dose_response, "frame-weights": _frame_weights}[args.tune_command]
    if getattr(args, "resume", False) and getattr(args, "max_concurrent", None):
        # Tune restores the searcher's concurrency limit (ConcurrencyLimiter state) with the experiment
        print("[reid] note: --max-concurrent sets a new experiment's trials at once; a resumed one keeps the number "
              "it started with (Tune restores it), so this one is not applied", flush=True)
    try:
        return handler(args)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (`ray job stop`): say how to go on
        if args.tune_command in ("search", "ablation") and not getattr(args, "from_results", None):
            again = "the same command" if args.resume else "the same command with --resume"
            print(f"[reid] the experiment keeps its finished trials: {again} "
                  f"continues it", file=sys.stderr, flush=True)
        raise


def _dose_response(args: argparse.Namespace) -> int:
    from reid import storage
    from tune.dose_response import dose_response

    out = storage.local_only(args.out, "--out", "tune dose-response", writes=True)
    data = storage.local_only(args.data, "--data", "tune dose-response", writes=True) if args.data else None
    png, data = dose_response(args.sidecars, out, data)
    print(f"[reid] dose-response: {png} (+ {data})")
    return 0


def _frame_weights(args: argparse.Namespace) -> int:
    from reid import storage
    from tune.frame_weights import frame_weight_check, line

    runs = [r for r in args.runs if "=" not in r]
    overrides = [r for r in args.runs if "=" in r]
    out = storage.local_only(args.out, "--out", "tune frame-weights", writes=True)
    storage.check_writable(out, "the JSON")  # before the runs are evaluated
    out, png, doc = frame_weight_check(runs, out, overrides, limit=args.limit)
    print(f"[reid] frame-weights: {line(doc)}")
    print(f"[reid] frame-weights: {out} (+ {png})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from tune.ablation import list_specs, load_spec
    from tune.spaces import BUILTIN_SPACES, load_space

    print("search spaces (reid tune search <method> --space NAME):")
    for name in sorted(BUILTIN_SPACES):
        space = load_space(name)
        print(f"  {name:<12} " + "; ".join(f"{k}: {d.describe()}" for k, d in space.params.items()))
    print("ablation tables (reid tune ablation NAME):")
    for name in list_specs():
        spec = load_spec(name)
        print(f"  {name:<28} {len(spec.rows)} rows, {spec.method}, paper on {spec.paper_dataset}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from reid import storage
    from reid.commands.common import gpu_recipe_on_cpu
    from reid.config import build_config
    from tune.search import SearchOptions, run_search
    from tune.spaces import load_space

    space = load_space(args.space)
    build_config(args.method, args.config, args.overrides)  # the user's own mistakes before any note of ours
    cfg = build_config(args.method, args.config, small_machine_overrides(list(args.config), list(args.overrides)))
    note = gpu_recipe_on_cpu(cfg)
    if note:
        print(note, flush=True)
    opts = SearchOptions(trials=args.trials, out=args.out, name=args.name, resume=args.resume, seed=args.seed,
                         max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial,
                         max_failures=args.max_failures, grace_period=args.grace_period,
                         reduction_factor=args.reduction_factor, num_cpus=args.num_cpus, verbose=args.verbose)
    outcome = run_search(cfg, space, opts)
    print(f"[reid] results: {storage.join(outcome.sweep_dir, 'results.md')}, "
          f"plot: {storage.join(outcome.sweep_dir, 'objective.png')}")
    return 1 if outcome.errors == len(outcome.rows) else 0


def _ablation(args: argparse.Namespace) -> int:
    import json

    from reid import storage
    from tune.ablation import load_spec, render, run_ablation
    from tune.runner import experiment_dir

    spec = load_spec(args.table)
    if args.from_results:
        source = args.from_results
        if not storage.is_file(source):
            raise ReidError(f"--from-results: {source} not found")
        recorded = json.loads(storage.read_text(source))
        if args.hardware:
            recorded.setdefault("meta", {})["hardware"] = args.hardware
        table = render(spec, recorded, storage.join(storage.parent(source), "table"))  # beside results.json
    else:
        rows = [int(i) for i in args.rows.split(",")] if args.rows else None
        if rows and any(not 0 <= i < len(spec.rows) for i in rows):
            raise ReidError(f"--rows: indices must be in 0..{len(spec.rows) - 1}")
        # after the table and rows are known good: it prints its note when it acts; the recorded command keeps it
        args.overrides = small_machine_overrides(list(args.config), list(args.overrides))
        run_ablation(spec, dataset=args.dataset, size=args.size, config_files=args.config,
                     user_overrides=args.overrides, out=args.out, name=args.name, resume=args.resume,
                     epochs=args.epochs, cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent,
                     num_cpus=args.num_cpus, max_failures=args.max_failures, hardware=args.hardware, rows=rows,
                     seeds=args.seeds, command=command_line(args), verbose=args.verbose)
        name = args.name or f"{spec.table}-{args.dataset}-{args.size}"
        table = storage.join(experiment_dir(args.out, name), "table.md")
    print(storage.read_text(table))
    if args.results_md:
        target = args.results_md
        sidecar = _with_suffix(target, ".json")
        storage.write_bytes(target, storage.read_bytes(table))  # local: parents made, replaced atomically
        storage.write_bytes(sidecar, storage.read_bytes(_with_suffix(str(table), ".json")))
        print(f"[reid] table copied to {target} (+ {storage.name(sidecar)})")
    return 0


def _with_suffix(location: str, suffix: str) -> str:
    """`location` with its last component's suffix replaced, keeping a URI's scheme (Path would drop a slash)."""
    head, _, last = location.rpartition("/")
    stem = last.rsplit(".", 1)[0] if "." in last else last
    return f"{head}/{stem}{suffix}" if head or location.startswith("/") else f"{stem}{suffix}"


def command_line(args: argparse.Namespace) -> str:
    """The `reid tune ablation ...` command that regenerates this table (recorded in the table and its sidecar)."""
    import shlex

    parts = ["reid", "tune", "ablation", args.table, f"--{args.size}", "--seeds", str(args.seeds)]
    if args.dataset != "synthetic":
        parts += ["--dataset", args.dataset]
    for flag in ("epochs", "rows", "name", "out"):
        value = getattr(args, flag)
        if value is not None and not (flag == "out" and value == "runs/ablations"):
            parts += [f"--{flag}", str(value)]
    for f in args.config:
        parts += ["--config", f]
    if args.results_md:
        parts += ["--results-md", args.results_md]
    return " ".join(shlex.quote(p) for p in [*parts, *args.overrides])
