"""From gathered features to a distance matrix and metrics, as `eval.*` asks (no Ray)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reid.config.schema import EvalConfig
from reid.data.records import TrackletRecord
from reid.errors import ReidError
from reid.evaluation.distances import pairwise_distance
from reid.evaluation.features import l2_normalize
from reid.evaluation.metrics import RankResult
from reid.evaluation.multiview import multiview_distance
from reid.evaluation.pairwise import pairwise_distance_matrix
from reid.evaluation.protocols import EvalSplit, evaluate_split
from reid.evaluation.rerank import rerank_features
from reid.evaluation.run.extract import pad_states
from reid.evaluation.score_norm import score_normalize
from reid.models.state_file import unwrap


@dataclass
class Scored:
    distmat: np.ndarray
    result: RankResult
    metrics: dict[str, Any] = field(default_factory=dict)


def distance_matrix(qf: torch.Tensor, gf: torch.Tensor, ev: EvalConfig) -> np.ndarray:
    """[Nq, D], [Ng, D] -> [Nq, Ng] with optional L2 normalisation, re-ranking and score normalisation."""
    if ev.normalize:
        qf, gf = l2_normalize(qf), l2_normalize(gf)
    if ev.rerank:
        metric = "cosine" if ev.distance == "cosine" else "sqeuclidean"
        dist = torch.as_tensor(rerank_features(qf, gf, ev.rerank_k1, ev.rerank_k2, ev.rerank_lambda, metric=metric))
    else:
        dist = pairwise_distance(qf, gf, ev.distance)
    if ev.score_norm:
        dist = score_normalize(dist)
    return dist.cpu().numpy()


def score(distmat: np.ndarray, records: list[TrackletRecord], split: EvalSplit, ev: EvalConfig) -> Scored:
    result = evaluate_split(distmat, records, split, ap_mode=ev.ap_mode)
    metrics = summarize(result, split.label)
    return Scored(distmat=distmat, result=result, metrics=metrics)


def summarize(result: RankResult, label: str) -> dict[str, Any]:
    """Percentages under the names the papers' tables use (mAP, mINP, R1, R5, R10, R20) + query counts."""
    s = result.summary()
    out: dict[str, Any] = {"protocol": label, "mAP": 100 * s["mAP"], "mINP": 100 * s["mINP"]}
    out.update({f"R{k}": 100 * s[f"rank{k}"] for k in (1, 5, 10, 20)})
    out.update(queries=int(s["num_queries"]), valid_queries=int(s["num_valid_queries"]),
               queries_without_match=int(s["num_queries_without_match"]))
    return out


def features_to_metrics(features: dict[int, torch.Tensor], records: list[TrackletRecord], split: EvalSplit,
                        ev: EvalConfig) -> Scored:
    qf = torch.stack([features[int(i)] for i in split.query])
    gf = torch.stack([features[int(i)] for i in split.gallery])
    return score(distance_matrix(qf, gf, ev), records, split, ev)


def multiview_to_metrics(features: dict[int, torch.Tensor], records: list[TrackletRecord], split: EvalSplit,
                         ev: EvalConfig) -> Scored:
    """`eval.tta` features [2, V, D] per tracklet (row 0: its probe clip's views, row 1: its gallery clip's) ->
    q [Nq, V, D], g [Ng, V, D] -> dist[i, j] = sum_v ||q[i, v] - g[j, v]|| (`multiview_distance`; eval.distance per
    view, eval.normalize per view, eval.score_norm on the sum)."""
    first = features[int(split.query[0])] if len(split.query) else None
    if first is None or first.dim() != 3 or first.shape[0] != 2:
        got = None if first is None else tuple(first.shape)
        raise ReidError(f"eval.tta={ev.tta} needs per-view features [2, V, D] (got {got}); they are extracted in "
                        f"this process: use --backend local")
    qf = torch.stack([features[int(i)][0] for i in split.query])
    gf = torch.stack([features[int(i)][1] for i in split.gallery])
    dist = multiview_distance(qf, gf, ev.distance, normalize=ev.normalize)
    if ev.score_norm:
        dist = score_normalize(dist)
    return score(dist.cpu().numpy(), records, split, ev)


def score_features(model: torch.nn.Module, features: dict[int, torch.Tensor], records: list[TrackletRecord],
                   split: EvalSplit, ev: EvalConfig, device: torch.device, *, pairwise: bool) -> Scored:
    """Rank the gallery for every query. With `pairwise`, `features` are per-sequence states [T, D] and each
    query-gallery distance comes from the model's `pair_distance` (the attention of one sequence depends on the
    other, evaluated in blocks: reid.evaluation.pairwise); with `ev.tta` per-view embeddings [2, V, D]
    (`multiview_to_metrics`); otherwise they are embeddings [D]."""
    if ev.tta != "none":
        return multiview_to_metrics(features, records, split, ev)
    if not pairwise:
        return features_to_metrics(features, records, split, ev)
    q, qm = pad_states([features[int(i)] for i in split.query])
    g, gm = pad_states([features[int(i)] for i in split.gallery])
    dist = pairwise_distance_matrix(unwrap(model), q, g, qm, gm, device=device).numpy()
    return score(dist, records, split, ev)
