"""`reid eval`: evaluate a checkpoint on a dataset and protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reid.commands.common import add_config_arguments, setup_logging
from reid.config import build_config
from reid.errors import ReidError

DESCRIPTION = """Evaluate a trained run (or one checkpoint) and print a metrics table; writes JSON.

  reid eval runs/baseline-default-synthetic-s0
  reid eval runs/posetap-default-prid2011-s0 eval.protocol=prid2011 eval.score_norm=true eval.rerank=true
  reid eval runs/astpn-default-synthetic-s0 eval.pairwise=true --backend local
  reid eval RUN data.root=data/prid-prepared data.dataset=prid2011        # cross-dataset

The run's config.yaml gives the model; overrides change data / eval settings. Protocols: mars-official,
mars-torchreid, duke-video, ilidsvid, prid2011, synthetic, cross-dataset (see docs/evaluation.md)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory (holding config.yaml) or a checkpoint directory inside one")
    add_config_arguments(parser)
    parser.add_argument("--backend", choices=["ray", "local"], default="ray",
                        help="feature extraction as Ray Data batch inference (default) or in this process")
    parser.add_argument("--out", help="JSON output (default <run>/eval.json)")
    parser.add_argument("--report", action="store_true", help="also write <run>/report.html")


def find_run(path: Path) -> tuple[Path, Path | None]:
    """(run dir with config.yaml, explicit checkpoint or None)."""
    for candidate in (path, *path.parents[:2]):
        if (candidate / "config.yaml").is_file():
            return candidate, (path if candidate != path else None)
    raise ReidError(f"{path} is not a run directory (no config.yaml in it or its parents)")


def run(args: argparse.Namespace) -> int:
    from reid.training.api import evaluate, write_report

    setup_logging()
    run_dir, checkpoint = find_run(Path(args.run))
    cfg = build_config(None, [run_dir / "config.yaml", *args.config], args.overrides)
    outcome = evaluate(cfg, checkpoint or run_dir, backend=args.backend, sample_queries=6 if args.report else 0)
    m = outcome.metrics
    print(f"{'protocol':<24}{'mAP':>7}{'mINP':>7}{'R1':>7}{'R5':>7}{'R10':>7}{'R20':>7}  valid queries")
    print(f"{m['protocol']:<24}{m['mAP']:>7.1f}{m['mINP']:>7.1f}{m['R1']:>7.1f}{m['R5']:>7.1f}{m['R10']:>7.1f}"
          f"{m['R20']:>7.1f}  {m['valid_queries']}/{m['queries']}")
    if m["queries_without_match"]:
        print(f"note: {m['queries_without_match']} queries have no valid match and are left out of the averages")
    out = Path(args.out) if args.out else run_dir / "eval.json"
    out.write_text(json.dumps({**m, "checkpoint": str(outcome.checkpoint)}, indent=2))
    print(f"metrics written to {out}")
    if args.report:
        print(f"report written to {write_report(cfg, outcome, run_dir / 'report.html')}")
    return 0
