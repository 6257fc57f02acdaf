"""`reid export`: a run's feature extractor as ONNX or TorchScript, plus a JSON sidecar describing its contract."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import torch

from reid import storage
from reid.deploy.graph import ExportGraph, dummy_inputs
from reid.deploy.onnx_ops import FixedResize, pose_map_sizes, register_symbolics
from reid.deploy.runs import LoadedRun, extra_inputs
from reid.deploy.verify import TOL, Check, check_graph
from reid.errors import ReidError

Format = Literal["onnx", "torchscript"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17


def build_graph(run: LoadedRun, *, double_normalize: bool = False) -> ExportGraph:
    cfg = run.cfg
    extras = extra_inputs(run.spec)
    resizers = {}
    if "pose_maps" in extras:  # posetap: the model's antialiased resize of the pose maps, as a fixed linear map
        args = dummy_inputs(cfg, run.spec, clips=1)
        batch = {"frames": args[0].permute(0, 1, 4, 2, 3).float(),
                 **{k: v.float() for k, v in zip(extras, args[1:], strict=True)}}
        sizes = pose_map_sizes(run.model, batch)
        if sizes is not None and sizes[0] != sizes[1]:
            resizers["pose_maps"] = FixedResize(*sizes)
    return ExportGraph(run.model, run.spec.input_norm, (cfg.data.height, cfg.data.width),
                       l2=cfg.eval.normalize, extras=extras, double_normalize=double_normalize,
                       resizers=resizers).eval()


def _input_doc(run: LoadedRun, name: str) -> str:
    h, w = run.cfg.data.height, run.cfg.data.width
    from reid.data.batching import POSE_STRIDE
    from reid.data.pose_maps import NUM_CHANNELS

    return {"flow": f"float32 [C, T, 2, {h}, {w}]: reid.data.flow.normalize_flow(clip_flow(frames)) of each clip's "
                    "frames at the model size (Lucas-Kanade / FLOW_BOUND, clipped to [-1, 1])",
            "pose_maps": f"float32 [C, T, {NUM_CHANNELS}, {h // POSE_STRIDE}, {w // POSE_STRIDE}] (fixed size): "
                         "OpenPose-layout maps rendered from keypoints (reid.data.pose_maps.render_pose_maps at "
                         f"stride {POSE_STRIDE}), resized in the graph"}.get(name, f"float32 ({name})")


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
                   **{k: _input_doc(run, k) for k in extra_inputs(run.spec)}},
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


Exporter = Literal["trace", "dynamo"]


def _write(graph: ExportGraph, run: LoadedRun, fmt: Format, path: Path, dynamic_t: bool,
           exporter: Exporter = "trace") -> None:
    """ONNX by the legacy tracing exporter ("trace") or by torch.export ("dynamo": symbolic shapes, slower);
    TorchScript by tracing."""
    args = dummy_inputs(run.cfg, run.spec, clips=2)
    names = ["frames", *extra_inputs(run.spec)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic on dynamic axes
        if fmt == "onnx":
            register_symbolics(OPSET)
            try:
                if exporter == "trace":
                    axes: dict[str, dict[int, str]] = {}
                    for n in names:
                        axes[n] = {0: "clips", 1: "T"} if dynamic_t else {0: "clips"}
                    axes["frames"].update({2: "height", 3: "width"})
                    torch.onnx.export(graph, args, str(path), input_names=names, output_names=["embedding"],
                                      dynamic_axes=axes, opset_version=OPSET, dynamo=False)
                else:
                    clips, t = torch.export.Dim("clips", min=1, max=4096), torch.export.Dim("T", min=2, max=4096)
                    size = {2: torch.export.Dim("height", min=8, max=4096), 3: torch.export.Dim("width", min=8,
                                                                                               max=4096)}
                    lead = {0: clips, 1: t} if dynamic_t else {0: clips}
                    shapes = ({**lead, **size}, tuple(dict(lead) for _ in names[1:]))
                    program = torch.onnx.export(graph, args, input_names=names, output_names=["embedding"],
                                                dynamic_shapes=shapes, opset_version=18, dynamo=True, verbose=False)
                    program.save(str(path))
            except Exception as exc:  # the exporter's errors are long; one line names the operator
                path.unlink(missing_ok=True)
                text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch.export colours its messages for a terminal
                first = (text.splitlines() or [type(exc).__name__])[0][:200]
                raise ReidError(f"ONNX export of {run.cfg.method} failed ({first}); try --format torchscript "
                                "(docs/deploy.md lists what exports)") from None
        else:
            torch.jit.trace(graph, args, check_trace=False).save(str(path))


def _exported(graph: ExportGraph, run: LoadedRun, fmt: Format, path: Path, dynamic_t: bool
              ) -> tuple[str, bool, list[Check], list[str]]:
    """Write the first graph that agrees with PyTorch, trying (exporter, dynamic T) in order: the tracing exporter,
    then (ONNX) torch.export, each with a dynamic T first and then with T fixed. Returns the exporter, whether T
    is dynamic, the checks of the written graph, and why the earlier tries were rejected."""
    t = run.cfg.data.seq_len
    shapes = [(2, t), (3, t)]  # traced with 2 clips: a third checks that the clip axis stayed dynamic
    exporters: list[Exporter] = ["trace", "dynamo"] if fmt == "onnx" else ["trace"]
    tries = [(e, d) for d in ((True, False) if dynamic_t else (False,)) for e in exporters]
    rejected: list[str] = []
    for exporter, dyn in tries:
        try:
            _write(graph, run, fmt, path, dyn, exporter)
        except ReidError as exc:
            rejected.append(f"{exporter}: {exc}")
            continue
        checks = check_graph(path, fmt, graph, run.cfg, run.spec, [*shapes, (2, t + 1)] if dyn else shapes)
        bad = next((c for c in checks if not c.ok), None)
        if bad is None:
            return exporter, dyn, checks, rejected
        rejected.append(f"{exporter}, {'dynamic' if dyn else 'fixed'} T: disagrees with PyTorch at C={bad.clips}, "
                        f"T={bad.T} (relative diff {bad.rel_diff:.1e})")
    path.unlink(missing_ok=True)
    raise ReidError(f"the exported {run.cfg.method} graph disagrees with PyTorch ({'; '.join(rejected)[:400]}); "
                    "not written")


def export_run(run: LoadedRun, fmt: Format, out: Path, *, dynamic_t: bool = True,
               double_normalize: bool = False) -> tuple[Path, Path]:
    """Write the model file and `<out>.json`; returns both paths. `double_normalize` only for tests.

    Every written graph is checked against the PyTorch graph (`reid.deploy.verify`) with 2 and 3 clips at the run's
    T and, when dynamic, at T + 1 (`_exported`): tracing can fix the clip count or T where a model takes a shape as
    a constant or loops over T; such a graph is not written, and the sidecar says which exporter and T were used."""
    if fmt not in SUFFIX:
        raise ReidError(f"unknown export format '{fmt}'; expected onnx or torchscript")
    graph = build_graph(run, double_normalize=double_normalize)
    tmp = out.with_name(out.name + ".tmp")
    # a place it cannot write is one line now, not every exporter's failure reported as a disagreement
    storage.check_writable(out, "the export")
    exporter, dyn, checks, rejected = _exported(graph, run, fmt, tmp, dynamic_t)
    tmp.replace(out)
    side = out.with_suffix(out.suffix + ".json")
    meta = sidecar(run, fmt, dyn)
    meta["exporter"] = {"trace": "torch.onnx legacy (tracing), opset 17" if fmt == "onnx" else "torch.jit.trace",
                        "dynamo": "torch.onnx dynamo (torch.export), opset 18"}[exporter]
    meta["check"] = {"against": "the PyTorch graph (same preprocessing) on random uint8 frames", "tolerance": TOL,
                     "results": [c.as_dict() for c in checks]}
    if dynamic_t and not dyn:
        meta["T_fixed_because"] = "; ".join(rejected)
    elif rejected:
        meta["rejected"] = rejected
    side.write_text(json.dumps(meta, indent=2))
    return out, side
