"""Training throughput (clips/s) and step-time breakdown for a method and worker counts.

Each worker count trains the same config for a few epochs (with Ray Train when workers > 0, in-process for 0);
the first epoch is warm-up and is left out; the numbers are medians over the remaining epochs. The total throughput
of N workers is rank 0's clips/s times N (every rank gets the same number of equal batches). Scaling efficiency of
N workers = throughput(N) / (N * throughput(1)). Data wait share = time waiting for the next batch / whole step
time (wait + forward + backward + optimiser), per worker count: the part of a step the data path costs the device.

  reid bench train --method baseline --workers 1,2 --epochs 4
  reid bench train --method asanet --workers 1,2,4 ray.use_gpu=true      # on a GPU node
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from reid.config import build_config, validate_overrides
from reid.errors import ReidError

PHASES = ("data_wait_s", "time/forward_s", "time/backward_s", "time/optimizer_s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="baseline", help="a registered method (default: baseline)")
    parser.add_argument("--config", action="append", default=None,
                        help="config files (default: <method>-synthetic)")
    parser.add_argument("--workers", default="1,2", help="comma-separated Ray Train worker counts (0 = in-process)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per measurement (the first is warm-up)")
    parser.add_argument("--batches", type=int, default=8, help="batches per epoch, in total over the workers")
    parser.add_argument("--data", default="data/synthetic-demo", help="synthetic dataset directory")
    parser.add_argument("--gpu", action="store_true", help="train on GPUs (ray.use_gpu=true)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted config overrides of the measured runs, e.g. data.seq_len=8 model.depth=50")


def measure(cfg, workers: int, storage: Path) -> dict[str, float]:
    from reid.training.api import train

    run = validate_overrides(cfg, {"ray.num_workers": workers, "name": f"bench-w{workers}",
                                   "ray.storage_path": str(storage), "train.eval_every": 10_000,
                                   "train.checkpoint_every": 10_000})
    history = train(run).history
    steady = history[1:] or history
    per_worker = statistics.median(h["clips_per_s"] for h in steady)
    out = {"workers": workers, "clips_per_s": per_worker * max(workers, 1)}
    out.update({k: statistics.median(h[k] for h in steady) for k in PHASES})
    out["data_wait_share"] = out["data_wait_s"] / max(sum(out[k] for k in PHASES), 1e-12)
    return out


def worker_counts(text: str) -> list[int]:
    """`--workers` ("1,2") -> [1, 2]; a clear error for anything else."""
    try:
        counts = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        counts = []
    if not counts or any(c < 0 for c in counts):
        raise ReidError(f"--workers takes comma-separated worker counts >= 0 (0 = in-process), got '{text}'")
    return counts


def run(args: argparse.Namespace) -> int:
    import torch

    from reid.registry import list_methods

    if args.method not in list_methods():
        raise ReidError(f"unknown method '{args.method}'; known methods: {', '.join(list_methods())}")
    counts = worker_counts(args.workers)
    files = args.config or [f"{args.method}-synthetic"]
    overrides = [f"data.root={args.data}", f"train.epochs={args.epochs}", *args.overrides]
    if args.gpu:
        overrides.append("ray.use_gpu=true")
    rows = []
    with tempfile.TemporaryDirectory(prefix="reid-bench-") as tmp:
        for w in counts:
            per_epoch = -(-args.batches // max(w, 1))
            cfg = build_config(args.method, files, [*overrides, f"data.batches_per_epoch={per_epoch * max(w, 1)}"])
            rows.append(measure(cfg, w, Path(tmp)))
    device = torch.cuda.get_device_name(0) if args.gpu and torch.cuda.is_available() else "CPU"
    print(f"\nreid bench train: {args.method}, {device}, medians over epochs 2..{args.epochs}")
    print(f"{'workers':>8}{'clips/s':>10}{'data wait':>10}{'forward':>10}{'backward':>10}{'optim':>10}"
          f"{'scaling':>9}")
    base = next((r["clips_per_s"] for r in rows if r["workers"] == 1), None)
    for r in rows:
        eff = f"{r['clips_per_s'] / (r['workers'] * base):.2f}" if base and r["workers"] >= 1 else "-"
        print(f"{r['workers']:>8}{r['clips_per_s']:>10.2f}" + "".join(f"{r[k] * 1000:>8.0f}ms" for k in PHASES)
              + f"{eff:>9}")
    print("(phase times are per step on rank 0; scaling = throughput(N) / (N x throughput(1)))")
    for r in rows:
        print(f"data wait share: {100 * r['data_wait_share']:.1f}% ({r['workers']} worker(s); target <= 5%)")
    return 0
