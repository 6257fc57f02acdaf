"""`reid bench {data,eval,train,gpu,pose}`: benchmarks that print side-by-side comparisons with ratios."""

from __future__ import annotations

import argparse
import importlib

SUMMARIES = {  # each bench's line in `reid bench --help`
    "data": "clips/s of the Ray Data pipeline at fit level vs the raw decode limit and a torchreid-style DataLoader",
    "eval": "CMC/mAP and re-ranking on a MARS-sized random problem vs per-query loops",
    "train": "training throughput, step-time breakdown and data wait share for a method and worker count",
    "gpu": "every GPU check in one command (fed ResNet-50 step, every method in bf16, DDP, nvJPEG, gpu tests)",
    "pose": "`reid pose`'s Keypoint R-CNN: time per frame and keypoint shift at several --min-size values",
}
DESCRIPTION = """Benchmarks. Each prints the measured numbers side by side with a reference implementation and the
ratio, as medians over repeats (timings on a shared machine are noisy). `reid bench BENCH --help` says what each
measures and prints."""

BENCHES = tuple(SUMMARIES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH")
    sub.required = True
    for name in BENCHES:
        if importlib.util.find_spec(f"reid.bench.{name}") is None:
            continue
        module = importlib.import_module(f"reid.bench.{name}")
        p = sub.add_parser(name, help=SUMMARIES[name], description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_bench=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._bench(args) or 0)
