"""`reid eval`: evaluate a checkpoint on a dataset and protocol."""

from __future__ import annotations

import argparse
import json

from reid import storage
from reid.commands.common import add_config_arguments, setup_logging
from reid.evaluation.run.backend import AUTO_HELP, BACKENDS, backend_line, choose_backend

DESCRIPTION = """Evaluate a trained run (or one checkpoint) and print a metrics table; writes JSON.

  reid eval runs/baseline-default-synthetic-s0
  reid eval runs/posetap-default-prid2011-s0 eval.protocol=prid2011 eval.score_norm=true eval.rerank=true
  reid eval runs/astpn-default-synthetic-s0 eval.pairwise=true --backend local
  reid eval RUN data.root=data/prid-prepared data.dataset=prid2011        # cross-dataset
  reid eval s3://bucket/runs/baseline-default-synthetic-s0 --backend local # a run stored in a bucket

The run's config.yaml gives the model; overrides change data / eval settings. A run under a URI is read in place
(its checkpoint is downloaded; eval.json and report.html are written back beside it). Protocols: mars-official,
mars-torchreid, duke-video, ilidsvid, prid2011, synthetic, cross-dataset (see docs/evaluation.md)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory (holding config.yaml) or a checkpoint directory inside one; "
                        "local or a URI (s3://bucket/runs/<name>, gs://...)")
    add_config_arguments(parser)
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help=AUTO_HELP)
    parser.add_argument("--out", help="JSON output, a path or URI (default <run>/eval.json)")
    parser.add_argument("--report", action="store_true", help="also write <run>/report.html")


def run(args: argparse.Namespace) -> int:
    from reid.data.records import read_manifest
    from reid.data.source import manifest_path
    from reid.evaluation.run.discovery import find_run, run_config
    from reid.evaluation.run.evaluate import evaluate, report_location, split_indices, write_run_report

    setup_logging()
    run_dir, checkpoint = find_run(args.run)  # a local directory or a URI (s3://bucket/runs/<name>)
    cfg = run_config(run_dir, args.config, args.overrides)
    out = args.out or storage.join(run_dir, "eval.json")
    storage.check_writable(out, "the metrics")  # before the features, not after
    if args.report:
        storage.check_writable(report_location(run_dir), "the report")
    extract = None
    local_only = "eval.pairwise / eval.tta run in this process" if cfg.eval.pairwise or cfg.eval.tta != "none" else None
    tracklets = len(split_indices(cfg, read_manifest(manifest_path(cfg.data)))[1])
    backend, why = choose_backend(args.backend, cfg, tracklets, local_only=local_only)
    if args.backend == "auto":
        print(backend_line(backend, why), flush=True)
    if backend == "ray":
        from reid.batch_inference import extract_features_ray as extract
    outcome = evaluate(cfg, checkpoint or run_dir, extract=extract, sample_queries=6 if args.report else 0)
    m = outcome.metrics
    print(f"{'protocol':<24}{'mAP':>7}{'mINP':>7}{'R1':>7}{'R5':>7}{'R10':>7}{'R20':>7}  valid queries")
    print(f"{m['protocol']:<24}{m['mAP']:>7.1f}{m['mINP']:>7.1f}{m['R1']:>7.1f}{m['R5']:>7.1f}{m['R10']:>7.1f}"
          f"{m['R20']:>7.1f}  {m['valid_queries']}/{m['queries']}")
    if m["queries_without_match"]:
        print(f"note: {m['queries_without_match']} queries have no valid match and are left out of the averages")
    storage.write_text(out, json.dumps({**m, "checkpoint": str(outcome.checkpoint)}, indent=2))
    print(f"metrics written to {out}")
    if args.report:
        print(f"report written to {write_run_report(cfg, outcome, run_dir)}")
    return 0
