"""`reid demo`: the main job on the embedded synthetic dataset, end to end."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from reid.commands.common import setup_logging
from reid.config import ExperimentConfig, build_config

DESCRIPTION = """The main job, end to end on the embedded synthetic dataset (no downloads):

  1. synthesize the demo dataset (data/synthetic-demo) if it is missing,
  2. start a local Ray cluster and train the baseline (ResNet-18) with 2 Ray Train workers on CPU,
  3. evaluate the trained model and a randomly initialised untrained one on the synthetic test split,
  4. write the HTML report, and print where everything is.

Takes a few minutes on 2 CPU cores. Everything goes to --out (default runs/demo); the same command again continues
the run there (nothing left to train: it is evaluated again), other settings (--epochs, --method, an override) need
another --out."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="where the run, metrics and report go")
    parser.add_argument("--data", default="data/synthetic-demo", help="synthetic dataset directory")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's)")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train workers (0 = in-process, no Ray)")
    parser.add_argument("--method", default="baseline", help="method to demo (its <method>-synthetic recipe)")
    parser.add_argument("--preset", default="demo", choices=["tiny", "demo"], help="synthetic preset")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="extra dotted config overrides")


def run(args: argparse.Namespace) -> int:
    from reid.data.records import read_manifest
    from reid.data.synth import ensure_dataset
    from reid.evaluation.run.evaluate import evaluate, write_report
    from reid.training.api import train

    setup_logging()
    # one concise line per epoch from the workers instead of Ray Data's per-operator progress bars
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    t0 = time.time()
    out = Path(args.out)
    print(f"[reid demo] 1/4 dataset: {args.data} (preset {args.preset})", flush=True)
    manifest = ensure_dataset(Path(args.data), args.preset, workers=2)
    overrides = [f"data.root={args.data}", f"data.synth_preset={args.preset}", f"ray.num_workers={args.workers}",
                 f"ray.storage_path={out}", "name=train", *args.overrides]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    cfg = build_config(args.method, [f"{args.method}-synthetic"], overrides)
    _check_earlier_demo(cfg, out)
    print(f"[reid demo] 2/4 training {cfg.method} for {cfg.train.epochs} epochs with "
          f"{cfg.ray.num_workers or 'no'} Ray Train worker(s) on CPU", flush=True)
    result = train(cfg, test=False)  # the test split is evaluated below (with the report's per-query extras)
    print("[reid demo] 3/4 evaluating the trained and an untrained model", flush=True)
    trained = evaluate(cfg, result.best_checkpoint or result.run_dir, manifest=manifest, sample_queries=6)
    untrained = evaluate(cfg, None, manifest=manifest)
    summary = {"trained": trained.metrics, "untrained": untrained.metrics,
               "run_dir": str(result.run_dir), "seconds": round(time.time() - t0, 1)}
    (result.run_dir / "demo.json").write_text(json.dumps(summary, indent=2))
    print("[reid demo] 4/4 writing the report", flush=True)
    report = write_report(cfg, trained, result.run_dir / "report.html", history=result.history,
                          baseline=untrained)
    print()
    print(f"{'model':<28}{'mAP':>8}{'R1':>8}{'R5':>8}{'mINP':>8}")
    for name, ev in (("trained " + cfg.method, trained), ("untrained (random init)", untrained)):
        m = ev.metrics
        print(f"{name:<28}{m['mAP']:>8.1f}{m['R1']:>8.1f}{m['R5']:>8.1f}{m['mINP']:>8.1f}")
    print()
    print(f"[reid demo] run directory : {result.run_dir}")
    print(f"[reid demo] config        : {result.run_dir / 'config.yaml'}")
    print(f"[reid demo] metrics       : {result.run_dir / 'metrics.jsonl'}")
    print(f"[reid demo] report        : {report}")
    print(f"[reid demo] finished in {time.time() - t0:.0f} s")
    query = next((r.tracklet_id for r in read_manifest(manifest).records if r.role == "query"), "TRACKLET_ID")
    print(f"[reid demo] next: `reid index {result.run_dir} --manifest {manifest} --out {out / 'idx'}`, then `reid "
          f"search {out / 'idx'} --query {manifest} --row {query}` (a query's top 10, matches marked; docs/deploy.md)")
    return 0


def _check_earlier_demo(cfg: ExperimentConfig, out: Path) -> None:
    """A demo whose --out holds one trained with other settings (--epochs, --method, --preset, an override): one line
    naming the differences and the demo's own ways on (train's refusal named `reid train --resume` and name=NEW, which
    the demo does not take). The same settings again continue that run (nothing left to train: it is re-evaluated)."""
    from reid.config import absolute_paths
    from reid.errors import ReidError
    from reid.training.api import run_location
    from reid.training.same_run import check_same_run, describe

    cfg = absolute_paths(cfg)
    changed = check_same_run(cfg, run_location(cfg), allow_changed=True)
    if changed:
        raise ReidError(f"--out {out} holds a demo trained with other settings ({describe(changed)}): give another "
                        f"--out, or remove {out} to train it again")
