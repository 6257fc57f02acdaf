"""`reid export`: a run's feature extractor as ONNX or TorchScript, plus a JSON sidecar describing its contract."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

import torch

from reid.deploy.graph import ExportGraph, dummy_inputs
from reid.deploy.runs import LoadedRun, extra_inputs
from reid.errors import ReidError

Format = Literal["onnx", "torchscript"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def build_graph(run: LoadedRun, *, double_normalize: bool = False) -> ExportGraph:
    cfg = run.cfg
    return ExportGraph(run.model, run.spec.input_norm, (cfg.data.height, cfg.data.width),
                       l2=cfg.eval.normalize, extras=extra_inputs(run.spec), double_normalize=double_normalize
                       ).eval()


def sidecar(run: LoadedRun, fmt: Format, dynamic_t: bool) -> dict[str, Any]:
    cfg = run.cfg
    from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    norm = ({"kind": "imagenet", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": 1 / 255}
            if run.spec.input_norm == "imagenet" else
            {"kind": "yuv", "note": "BT.601 YUV of x/255, each frame and channel standardised"})
    return {
        "format": fmt, "method": cfg.method, "run": str(run.run_dir), "checkpoint": str(run.checkpoint),
        "model_hash": run.model_hash,
        "inputs": {"frames": "uint8 [C, T, H, W, 3] RGB, any H, W (resized in the graph)",
                   **{k: f"float32 at the model size ({k})" for k in extra_inputs(run.spec)}},
        "input_size": [cfg.data.height, cfg.data.width],
        "T": None if dynamic_t else cfg.data.seq_len, "dynamic_T": dynamic_t, "train_T": cfg.data.seq_len,
        "test_sampler": cfg.data.test_sampler,
        "feature_dim": run.feature_dim, "output": "float32 [D]: the mean of the C clips' features",
        "normalization": {"input": norm, "resize": "bilinear", "in_graph": True,
                          "output_l2": cfg.eval.normalize},
        "distance": cfg.eval.distance,
        "pairwise_part": ("not exported: this method also scores query-gallery pairs (eval.pairwise); the "
                          "exported graph is its per-sequence feature extractor") if hasattr(run.model, "pair_distance")
        else None,
    }


def export_run(run: LoadedRun, fmt: Format, out: Path, *, dynamic_t: bool = True,
               double_normalize: bool = False) -> tuple[Path, Path]:
    """Write the model file and `<out>.json`; returns both paths. `double_normalize` only for tests."""
    if fmt not in SUFFIX:
        raise ReidError(f"unknown export format '{fmt}'; expected onnx or torchscript")
    graph = build_graph(run, double_normalize=double_normalize)
    args = dummy_inputs(run.cfg, run.spec, clips=2)
    names = ["frames", *extra_inputs(run.spec)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic on dynamic axes
        if fmt == "onnx":
            axes: dict[str, dict[int, str]] = {}
            for n in names:
                axes[n] = {0: "clips", 1: "T"} if dynamic_t else {0: "clips"}
            axes["frames"].update({2: "height", 3: "width"})
            try:
                torch.onnx.export(graph, args, str(tmp), input_names=names, output_names=["embedding"],
                                  dynamic_axes=axes, opset_version=17, dynamo=False)
            except Exception as exc:  # the exporter's errors are long; one line names the operator
                tmp.unlink(missing_ok=True)
                first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                raise ReidError(f"ONNX export of {run.cfg.method} failed ({first}); try --format torchscript "
                                "(docs/deploy.md lists what exports)") from None
        else:
            traced = torch.jit.trace(graph, args, check_trace=False)
            traced.save(str(tmp))
    tmp.replace(out)
    side = out.with_suffix(out.suffix + ".json")
    side.write_text(json.dumps(sidecar(run, fmt, dynamic_t), indent=2))
    return out, side
