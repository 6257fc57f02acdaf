"""Turn an evaluation (and optionally a training history) into the HTML report of reid.evaluation.report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reid.config.schema import ExperimentConfig
from reid.evaluation.report import (
    AttentionMaps,
    GroupWeights,
    RankedQuery,
    ReportData,
    TemporalWeights,
    render_report,
)

UNTRAINED = "untrained (random init)"


def _label(records: list, i: int) -> str:
    r = records[i]
    return f"pid {r.pid} cam {r.camid}"


def build_report_data(cfg: ExperimentConfig, outcome: Any, *, history: list[dict] | None = None,
                      baseline: Any = None, top_k: int = 5) -> ReportData:
    split, records, extras = outcome.split, outcome.records, outcome.extras
    data = ReportData(title=f"{cfg.method} ({cfg.variant or 'default'}) on {cfg.data.dataset}",
                      subtitle=f"protocol {outcome.metrics['protocol']}; checkpoint {outcome.checkpoint or '-'}",
                      config=cfg.model_dump(mode="json"))
    if history:
        data.history = list(history)
        last = history[-1]
        data.notes.append(f"trained {len(history)} epochs; final loss {last.get('loss', float('nan')):.4f}; "
                          f"best validation mAP {max(h.get('best_mAP', -1) for h in history):.1f}")
    data.notes.append(f"{outcome.metrics['valid_queries']} of {outcome.metrics['queries']} queries have a valid "
                      f"match; {outcome.metrics['queries_without_match']} without one are left out of the averages")
    from reid.evaluation.protocols import evaluate_split

    # one metrics table (and CMC legend) that names each model as the demo's console table does
    data.results = {f"trained {cfg.method}": evaluate_split(outcome.distmat, records, split,
                                                           ap_mode=cfg.eval.ap_mode)}
    if baseline is not None:
        data.results[UNTRAINED] = evaluate_split(baseline.distmat, records, split, ap_mode=cfg.eval.ap_mode)
    order = np.argsort(outcome.distmat, axis=1, kind="stable")
    for qpos, qi in enumerate(split.query.tolist()):
        if qi not in extras:
            continue
        q = records[qi]
        gal = [int(split.gallery[j]) for j in order[qpos] if not (records[int(split.gallery[j])].pid == q.pid
               and records[int(split.gallery[j])].camid == q.camid)][:top_k]
        if not all(g in extras for g in gal):
            continue
        data.rankings.append(RankedQuery(
            query=extras[qi]["frames"][0], gallery=[extras[g]["frames"][0] for g in gal],
            correct=[records[g].pid == q.pid for g in gal], label=_label(records, qi),
            gallery_labels=[_label(records, g) for g in gal]))
        ex = extras[qi]
        name = f"query {q.tracklet_id} ({_label(records, qi)})"
        if "temporal_weights" in ex:
            w = ex["temporal_weights"][0].numpy()
            frames = ex["frames"][: w.shape[0]]
            if w.ndim == 2:
                groups = outcome.group_names or [f"group {g}" for g in range(w.shape[1])]
                data.groups.append(GroupWeights(name, w, groups, frames))
            else:
                data.temporal.append(TemporalWeights(name, w, frames))
        if "spatial_maps" in ex:
            maps = ex["spatial_maps"][0].numpy()
            maps = maps.mean(axis=1) if maps.ndim == 4 else maps
            data.attention.append(AttentionMaps(name, ex["frames"][: maps.shape[0]], maps))
    return data


def write_report(cfg: ExperimentConfig, outcome: Any, path: Path, *, history: list[dict] | None = None,
                 baseline: Any = None) -> Path:
    return render_report(build_report_data(cfg, outcome, history=history, baseline=baseline), path)
