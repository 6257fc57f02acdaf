"""A trained run as the deploy commands need it: config, method spec, model with its weights, and a model hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from reid import storage
from reid.config.schema import ExperimentConfig
from reid.registry import MethodSpec
from reid.spec import DataInfo


@dataclass
class LoadedRun:
    run_dir: Path | str  # a URI's string for a run in a bucket
    checkpoint: Path | str | None
    cfg: ExperimentConfig
    spec: MethodSpec
    model: torch.nn.Module
    manifest_path: Path
    model_hash: str
    feature_dim: int
    info: DataInfo  # what the model was built for (the run's training identities), not any manifest's given later


def model_hash(model: torch.nn.Module) -> str:
    """sha256 (first 16 hex digits) over the model's tensors, names sorted: equal weights <=> equal hash.

    An index remembers the hash of the model that embedded its gallery, so a query embedded by another model (or
    by the same run after more training) is refused instead of silently compared in an unrelated feature space.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_run(path: str | Path, overrides: list[str] | None = None) -> LoadedRun:
    """The run at `path` (a run directory or a checkpoint directory inside one), its model in eval mode on the CPU.

    Reuses `reid eval`'s run discovery and model loading (reid.evaluation.run: checkpoint selection and checks)."""
    from reid.data.info import data_info
    from reid.data.records import read_manifest
    from reid.data.source import manifest_path as dataset_manifest
    from reid.data.validation import with_validation_split
    from reid.evaluation.run.discovery import find_run, run_config
    from reid.evaluation.run.evaluate import load_model
    from reid.registry import get_method

    run_dir, checkpoint = find_run(storage.as_location(path))  # local, or a URI (s3://bucket/runs/<name>)
    cfg = run_config(run_dir, (), overrides or [], overridable=False)  # export, index, search, serve: no key=value
    spec = get_method(cfg.method)
    manifest_path = dataset_manifest(cfg.data)
    # the identities the run trained on: its manifest less the held-out validation identities, as `reid train` and
    # `reid eval` build it (so the ID classifier is loaded, not skipped for a shape mismatch)
    info = data_info(with_validation_split(read_manifest(manifest_path), cfg.data.val_identities), cfg.data)
    model, used = load_model(cfg, checkpoint or run_dir, info)
    model.eval()
    dim = _feature_dim(model, cfg, spec)
    return LoadedRun(run_dir=run_dir, checkpoint=used, cfg=cfg, spec=spec, model=model,
                     manifest_path=manifest_path, model_hash=model_hash(model), feature_dim=dim, info=info)


@torch.no_grad()
def _feature_dim(model: torch.nn.Module, cfg: ExperimentConfig, spec: MethodSpec) -> int:
    """Feature width D from one forward pass on zeros (models do not all expose it as an attribute)."""
    from reid.deploy.graph import dummy_inputs

    batch = dict(zip(("frames", *extra_inputs(spec)), dummy_inputs(cfg, spec, clips=1), strict=True))
    batch["frames"] = batch["frames"].permute(0, 1, 4, 2, 3).float()
    return int(model({k: v.float() for k, v in batch.items()})["features"].shape[-1])


def extra_inputs(spec: MethodSpec) -> tuple[str, ...]:
    """Per-frame inputs besides the frames that the model's forward reads at test time (attributes are labels)."""
    return tuple(sorted(spec.inputs - {"frames", "attributes"}))
