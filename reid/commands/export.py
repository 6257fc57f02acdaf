"""`reid export`: a run's per-sequence feature extractor as ONNX or TorchScript with a JSON sidecar."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from reid import storage

DESCRIPTION = """Export a trained run's feature extractor with its preprocessing inside the graph.

  reid export runs/baseline-default-synthetic-s0 --format onnx
  reid export RUN --format torchscript --out model.pt --fixed-t
  reid export s3://bucket/tune/NAME/runs/TRIAL           # a run in a bucket: written to <run>/export/ there

Input: uint8 frames [C, T, H, W, 3] of one tracklet (C clips of T frames, any H, W); output: its embedding [D].
A sidecar <out>.json gives the input size, T, feature dim, normalisation, distance and the model hash.
fcnta/astpn (siamese): the per-sequence part only; posetap also takes pose maps (docs/deploy.md)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory (holding config.yaml) or a checkpoint directory inside one; "
                        "local or a URI (s3://bucket/runs/<name>)")
    parser.add_argument("--format", choices=["onnx", "torchscript"], default="onnx",
                        help="default onnx; torchscript: PyTorch deprecates TorchScript (torch 2.15 warns on "
                        "torch.jit.load), so a later PyTorch may not load the file: prefer onnx")
    parser.add_argument("--out", help="output file, a path or URI (default <run>/export/model.onnx or model.pt)")
    parser.add_argument("--fixed-t", action="store_true",
                        help="fix T (frames per clip) to the run's data.seq_len instead of a dynamic axis")


def run(args: argparse.Namespace) -> int:
    from reid.deploy.export import SUFFIX, export_run
    from reid.deploy.runs import load_run

    loaded = load_run(args.run)
    out = args.out or storage.join(loaded.run_dir, "export", f"model{SUFFIX[args.format]}")
    if storage.is_uri(out):  # a run in a bucket, or --out there: exported and checked here, then uploaded
        with tempfile.TemporaryDirectory(prefix="reid-export-") as tmp:
            local, local_side = export_run(loaded, args.format, Path(tmp) / storage.name(out),
                                           dynamic_t=not args.fixed_t)
            meta = json.loads(local_side.read_text())
            model_file = storage.write_bytes(out, local.read_bytes())
            side = storage.write_bytes(f"{out}.json", local_side.read_bytes())
    else:
        model_file, side = export_run(loaded, args.format, Path(out), dynamic_t=not args.fixed_t)
        meta = json.loads(side.read_text())
    print(f"exported {loaded.cfg.method} ({args.format}, feature dim {meta['feature_dim']}, "
          f"T {'dynamic' if meta['dynamic_T'] else meta['T']}, model hash {meta['model_hash']}) to {model_file}")
    results = meta["check"]["results"]
    print(f"checked against PyTorch ({meta['exporter']}) at {len(results)} input shapes: max abs diff "
          f"{max(r['max_abs_diff'] for r in results):.1e}, relative {max(r['rel_diff'] for r in results):.1e} "
          f"(tolerance {meta['check']['tolerance']:g})")
    if "T_fixed_because" in meta:
        print(f"T fixed to {meta['T']}: no graph with a dynamic T agreed with PyTorch ({meta['T_fixed_because'][:300]})")
    print(f"sidecar: {side}")
    if args.format == "torchscript":
        print(f"note: PyTorch deprecates TorchScript (torch {_torch_version()} warns on torch.jit.load); a later "
              "PyTorch may not load this file, ONNX (the default format) does not depend on it")
    return 0


def _torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]
