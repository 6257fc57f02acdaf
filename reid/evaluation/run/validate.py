"""Per-epoch validation, called by the training loop (reid.training.worker): every rank embeds a slice of the
validation tracklets, the features are gathered (never one worker's shard alone), and metrics are computed once and
shared.

The validation set is the held-out training identities of `reid.data.validation` (issue 17, item 7), never the
protocol's test split: the best checkpoint, ASHA and every Tune objective select on it. A manifest without a
validation split (`data.val_identities=0`) has no per-epoch validation at all."""

from __future__ import annotations

from typing import Any, Protocol

import torch

from reid.config.schema import ExperimentConfig
from reid.data.batching import BatchMaker
from reid.data.records import Manifest
from reid.data.validation import validation_split
from reid.evaluation.run.extract import extract_features
from reid.evaluation.run.scoring import score_features
from reid.models.state_file import unwrap
from reid.spec import MethodSpec


class Gatherer(Protocol):
    """Where the validation runs (the training loop's `reid.training.session.Session` is one): this worker's rank
    among `world_size`, its device, and an all-gather of a picklable object across the workers."""

    rank: int
    world_size: int
    device: torch.device

    def all_gather(self, obj: Any) -> list[Any]: ...


class Validator:
    def __init__(self, manifest: Manifest, cfg: ExperimentConfig, spec: MethodSpec) -> None:
        self.manifest, self.cfg, self.spec = manifest, cfg, spec
        self.split = validation_split(manifest.records)
        self.indices = [] if self.split is None else sorted(set(self.split.query.tolist()))
        self._maker: BatchMaker | None = None

    @property
    def enabled(self) -> bool:
        return self.split is not None

    def maker(self) -> BatchMaker:
        if self._maker is None:
            self._maker = BatchMaker(self.manifest, self.cfg.data, self.spec.inputs - {"attributes"}, train=False)
        return self._maker

    @torch.no_grad()
    def run(self, model: torch.nn.Module, session: Gatherer) -> dict[str, Any]:
        """val/mAP, val/R1 ... of `model` on the validation split ({} without one)."""
        if self.split is None:
            return {}
        pairwise = self.cfg.eval.pairwise and hasattr(unwrap(model), "pair_distance")
        mine = self.indices[session.rank::session.world_size]
        feats = extract_features(model, self.maker(), mine, self.cfg, self.spec, session.device, states=pairwise)
        gathered: dict[int, torch.Tensor] = {}
        for part in session.all_gather(dict(zip(mine, feats, strict=True))):
            gathered.update(part)
        model.train()
        metrics: dict[str, Any] = {}
        if session.rank == 0:
            scored = score_features(model, gathered, self.manifest.records, self.split, self.cfg.eval,
                                    session.device, pairwise=pairwise)
            metrics = {f"val/{k}": v for k, v in scored.metrics.items() if k != "protocol"}
        return session.all_gather(metrics)[0]
