"""`reid train`: train a method with Ray Train (or in-process with ray.num_workers=0)."""

from __future__ import annotations

import argparse
import sys
import textwrap

from reid.commands.common import add_config_arguments, gpu_recipe_on_cpu, setup_logging
from reid.config import build_config
from reid.config.loader import list_packaged_configs
from reid.errors import ReidError

DESCRIPTION = """Train a method.

  reid train baseline --config baseline-synthetic
  reid train adfta variant=E data.root=data/mars-prepared --config adfta
  reid train asanet model.depth=18 ray.num_workers=2 ray.cpus_per_worker=0.5
  reid train --resume runs/baseline-default-synthetic-s0        # continue an interrupted run
  reid train posetap --init-from runs/posetap-pretrain --config posetap-prid2011   # two-stage recipe
  reid train baseline ray.num_workers=2 --audit-log /shared/audit/run.jsonl   # log every report and failure

The run lives in <ray.storage_path>/<run name> (default runs/<method>-<variant>-<dataset>-s<seed>); starting the
same command again resumes it from its latest checkpoint. The resolved config is saved there as config.yaml. A
start whose config learns differently from the run's checkpoints (another optim.lr, train.epochs, data, ...) is
refused with the keys that differ: continue it with --resume (key=value after it changes a key on purpose) or give
the new run another name (name=NEW).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION + textwrap.fill(", ".join(list_packaged_configs()), width=120,
                                                     initial_indent="Packaged configs: ",
                                                     subsequent_indent="  ", break_on_hyphens=False)
    parser.add_argument("method", nargs="?", help="method name (baseline, adfta, asanet, posetap, fcnta, astpn)")
    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="RUN_DIR", help="resume the run in RUN_DIR (uses its config.yaml)")
    parser.add_argument("--init-from", metavar="RUN", help="initialise weights from a run dir or checkpoint")
    parser.add_argument("--audit-log", metavar="PATH",
                        help="append one JSON line per Ray Train report and per worker-group failure to PATH (a local "
                             "file on the driver's node, where the Train controller runs; reid/training/audit.py "
                             "checks it). Ray runs only (ray.num_workers >= 1)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="debug logging, every library's included (default: this project's INFO lines, other "
                             "libraries' warnings)")


def config_from_args(args: argparse.Namespace):
    overrides = list(args.overrides)
    if "=" in (args.method or ""):
        overrides.insert(0, args.method)
        args.method = None
    files = list(args.config)
    run_config_file = None
    if args.resume:  # a local run directory or a URI (s3://bucket/runs/<name>)
        from reid.training.api import resume_source

        run_config_file, resume_overrides = resume_source(args.resume)
        files.insert(0, run_config_file)
        overrides += resume_overrides
    if args.init_from:
        overrides.append(f"train.init_from={args.init_from}")
    if not args.method and not files and not any(o.startswith("method=") for o in overrides):
        raise ReidError("name a method (e.g. `reid train baseline`) or pass --config / --resume")
    cfg = build_config(args.method, files, overrides)
    if run_config_file:  # an older run's relative dataset path from another directory: an error, not another dataset
        from reid.evaluation.run.discovery import check_relative_dataset

        check_relative_dataset(args.resume, run_config_file, cfg)
    return cfg


def resume_hint(cfg) -> str:
    """What a stopped run can do next: continue from its latest checkpoint, or start again (none was written)."""
    from reid.training.api import run_location
    from reid.training.same_run import has_checkpoints

    where = run_location(cfg)
    if has_checkpoints(where):
        return f"[reid] {where} keeps its checkpoints: continue it with `reid train --resume {where}`"
    return f"[reid] {where} has no checkpoint yet: the same command starts it again"


def run(args: argparse.Namespace) -> int:
    from reid.training.api import train

    setup_logging(args.verbose)
    cfg = config_from_args(args)
    print(f"[reid] training {cfg.method} (variant {cfg.variant or 'default'}) on {cfg.data.dataset}: "
          f"run {cfg.run_name()}, {cfg.ray.num_workers or 'in-process'} worker(s)", flush=True)
    note = gpu_recipe_on_cpu(cfg)
    if note:
        print(note, flush=True)
    callbacks = None
    if args.audit_log:
        if cfg.ray.num_workers == 0:
            raise ReidError("--audit-log logs Ray Train's reports: it needs ray.num_workers >= 1 (this run trains "
                            "in-process)")
        from reid.training.audit import ReportAuditLog

        callbacks = [ReportAuditLog(args.audit_log)]
    try:
        result = train(cfg, callbacks=callbacks, allow_changed=bool(args.resume))
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (`ray job stop`): say how to go on from the last checkpoint
        print(resume_hint(cfg), file=sys.stderr, flush=True)
        raise
    n = len(result.history)
    print(f"[reid] done: {n} epoch{'' if n == 1 else 's'}, best val mAP {result.best_map:.1f}")
    print(f"[reid] run directory: {result.run_dir}")
    if result.best_checkpoint:
        print(f"[reid] best checkpoint: {result.best_checkpoint}")
    if result.test:  # evaluated once, with the checkpoint chosen on validation (reid.data.validation)
        t = result.test
        print(f"[reid] test split ({t.get('protocol')}, {t.get('valid_queries')} queries): mAP {t['mAP']:.1f}  "
              f"R1 {t['R1']:.1f}  R5 {t['R5']:.1f}  (test.json in the run directory)")
    print(f"[reid] next: `reid report {result.run_dir}` (metrics, training curves, ranked galleries as HTML), "
          f"`reid eval {result.run_dir} eval.protocol=...` (docs/evaluation.md)")
    return 0
