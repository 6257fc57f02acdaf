"""Shared by the export tests: the project's own embedding path (the reference an exported graph must match) and
untrained small runs of any method (64x32 frames, T=4) built without training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from reid.deploy.runs import LoadedRun

METHODS = ("baseline", "asanet", "fcnta", "astpn", "posetap", "adfta")
SMALL = ["data.height=64", "data.width=32", "data.seq_len=4"]
# ResNet-18 trunks where the method has a depth (the smallest graph that still runs the method's own code)
DEPTH_18 = {"baseline", "asanet", "posetap", "adfta"}
NO_PRETRAINED_KEY = {"fcnta", "astpn"}  # RCN frame CNNs: no ImageNet weights to switch off


def reference_embedding(run: LoadedRun, frames: torch.Tensor, *extras: torch.Tensor) -> np.ndarray:
    """The project's own path: `normalize_inputs` (as reid.training.worker / evaluation) -> the model's features
    [C, D] -> mean over clips -> L2 when the run evaluates with `eval.normalize`. frames uint8 [C, T, H, W, 3] at
    the model size; extras as `reid.deploy.graph.dummy_inputs` gives them (raw: pose maps at the pipeline's size,
    resized by the model itself)."""
    from reid.data.inputs import normalize_inputs
    from reid.deploy.runs import extra_inputs

    batch = {"frames": frames.permute(0, 1, 4, 2, 3), **dict(zip(extra_inputs(run.spec), extras, strict=True))}
    with torch.no_grad():
        f = run.model(normalize_inputs(batch, run.spec, torch.device("cpu")))["features"].float().mean(0)
    return (torch.nn.functional.normalize(f, dim=0) if run.cfg.eval.normalize else f).numpy()


def untrained_run(method: str, data_root: Path) -> LoadedRun:
    """An untrained model of `method` (its packaged config, small sizes) as `reid.deploy.runs.load_run` returns a
    trained one; built for the synthetic set's identities and attribute schema."""
    from reid.config import build_config
    from reid.data.info import data_info
    from reid.data.records import read_manifest
    from reid.deploy.runs import _feature_dim, model_hash
    from reid.models.factory import build_method

    overrides = [f"data.root={data_root}", *SMALL]
    if method not in NO_PRETRAINED_KEY:
        overrides.append("model.pretrained=false")
    if method in DEPTH_18:
        overrides.append("model.depth=18")
    cfg = build_config(method, [], overrides)
    info = data_info(read_manifest(data_root / "manifest.parquet"), cfg.data)
    built = build_method(cfg, info)
    model = built.model.eval()
    return LoadedRun(run_dir=data_root, checkpoint=None, cfg=cfg, spec=built.spec, model=model,
                     manifest_path=data_root / "manifest.parquet", model_hash=model_hash(model),
                     feature_dim=_feature_dim(model, cfg, built.spec), info=info)
