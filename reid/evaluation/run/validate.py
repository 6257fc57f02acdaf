"""Per-epoch validation inside the training loop: every rank embeds a slice of the validation tracklets, the
features are gathered (never one worker's shard alone), and metrics are computed once and shared.

The validation set is the held-out training identities of `reid.data.validation` (issue 17, item 7), never the
protocol's test split: the best checkpoint, ASHA and every Tune objective select on it. A manifest without a
validation split (`data.val_identities=0`) has no per-epoch validation at all."""

from __future__ import annotations

from typing import Any

import torch

from reid.config.schema import EvalConfig, ExperimentConfig
from reid.data.batching import BatchMaker
from reid.data.records import Manifest, TrackletRecord
from reid.data.validation import validation_split
from reid.evaluation.pairwise import pairwise_distance_matrix
from reid.evaluation.protocols import EvalSplit
from reid.registry import MethodSpec
from reid.training.checkpoint import unwrap
from reid.training.features import extract_features, pad_states
from reid.training.scoring import Scored, features_to_metrics, score
from reid.training.session import Session


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
            self._maker = BatchMaker(self.manifest, self.cfg, self.spec.inputs - {"attributes"}, train=False)
        return self._maker

    @torch.no_grad()
    def run(self, model: torch.nn.Module, session: Session) -> dict[str, Any]:
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


def score_features(model: torch.nn.Module, features: dict[int, torch.Tensor], records: list[TrackletRecord],
                   split: EvalSplit, ev: EvalConfig, device: torch.device, *, pairwise: bool) -> Scored:
    """Rank the gallery for every query. With `pairwise`, `features` are per-sequence states [T, D] and each
    query-gallery distance comes from the model's `pair_distance` (the attention of one sequence depends on the
    other, evaluated in blocks: reid.evaluation.pairwise); otherwise they are embeddings [D]."""
    if not pairwise:
        return features_to_metrics(features, records, split, ev)
    q, qm = pad_states([features[int(i)] for i in split.query])
    g, gm = pad_states([features[int(i)] for i in split.gallery])
    dist = pairwise_distance_matrix(unwrap(model), q, g, qm, gm, device=device).numpy()
    return score(dist, records, split, ev)
