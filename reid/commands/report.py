"""`reid report`: the self-contained HTML report of a run."""

from __future__ import annotations

import argparse

from reid import storage
from reid.commands.common import add_config_arguments, setup_logging

DESCRIPTION = """Write the HTML report of a run: metrics table, CMC curve, training curves (loss terms, validation
mAP / R1 and throughput by epoch, from metrics.jsonl), ranked gallery thumbnails per sampled query (correct / wrong
marked), and, for models that expose them, temporal weights per frame (per attribute group for adfta) and spatial
attention maps. Open it in any browser; it has no external resources.

  reid report runs/demo/train
  reid report runs/adfta-E-synthetic-s0 --queries 8 --out /tmp/adfta.html"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory (holding config.yaml), local or a URI (s3://bucket/runs/<name>)")
    add_config_arguments(parser)
    parser.add_argument("--queries", type=int, default=6, help="sampled queries shown with their rankings")
    parser.add_argument("--out", help="HTML path or URI (default <run>/report.html)")


def run(args: argparse.Namespace) -> int:
    from reid.evaluation.run.discovery import find_run, run_config
    from reid.evaluation.run.evaluate import evaluate, report_location, write_run_report

    setup_logging()
    run_dir, checkpoint = find_run(args.run)  # a local directory or a URI (s3://bucket/runs/<name>)
    cfg = run_config(run_dir, args.config, args.overrides)
    storage.check_writable(report_location(run_dir, args.out), "the report")  # before the features
    outcome = evaluate(cfg, checkpoint or run_dir, sample_queries=args.queries)
    print(f"report written to {write_run_report(cfg, outcome, run_dir, args.out)}")
    return 0
