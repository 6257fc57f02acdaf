"""From recorded ablation results (results.json) to the table's statistics and its JSON sidecar (issue 17, items 3
and 4): per row the mean over seeds with a 95% interval, per paper ordering a paired bootstrap verdict, the
headline comparison, and `results/<table>.json`.

Everything here reads the recorded per-query scores of the test split ("per_query": row -> seed -> AP in [0, 1]
per query, None without a valid match, and the 1-based rank of the first match); no training is needed, so
`reid tune ablation --from-results` recomputes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tune.statistics import Estimate, estimate, paired_difference, verdict

STAT_METRICS = ("mAP", "R1")


def per_query_values(recorded: dict[str, Any], row: str, seeds: list[str], metric: str) -> np.ndarray | None:
    """[S, Q] percent scores of `row` on `seeds` (None when a seed is missing): AP x 100, or 100 x [rank-1 hit].
    Queries without a valid match are NaN here (dropped by `valid_queries`)."""
    runs = recorded.get("per_query", {}).get(row, {})
    if not seeds or any(s not in runs for s in seeds):
        return None
    if metric == "mAP":
        rows = [[np.nan if a is None else 100.0 * a for a in runs[s]["ap"]] for s in seeds]
    elif metric == "R1":
        rows = [[np.nan if ap is None else 100.0 * (r == 1) for r, ap in zip(runs[s]["first_match_rank"],
                                                                          runs[s]["ap"], strict=True)]
                for s in seeds]
    else:
        raise ValueError(f"no per-query values for {metric}")
    return np.array(rows, dtype=np.float64)


def valid_queries(*blocks: np.ndarray) -> np.ndarray:
    """Mask [Q] of the queries with a finite value in every block (all rows, all seeds)."""
    return np.all([np.isfinite(b).all(axis=0) for b in blocks], axis=0)


def common_seeds(recorded: dict[str, Any], *rows: str) -> list[str]:
    """The seeds every one of `rows` has per-query scores for (sorted numerically)."""
    pq = recorded.get("per_query", {})
    sets = [set(pq.get(r, {})) for r in rows]
    common = set.intersection(*sets) if sets else set()
    return sorted(common, key=lambda s: (len(s), s))


def _est(e: Estimate) -> dict[str, Any]:
    return {"mean": round(e.mean, 3), "ci95": [round(e.lo, 3), round(e.hi, 3)]}


def row_statistics(recorded: dict[str, Any], row: str) -> dict[str, Any] | None:
    """{metric: {"mean", "ci95"}, "seeds": n, "valid_queries": q} of one row, None without per-query scores."""
    seeds = common_seeds(recorded, row)
    out: dict[str, Any] = {}
    for metric in STAT_METRICS:
        values = per_query_values(recorded, row, seeds, metric)
        if values is None:
            return None
        keep = valid_queries(values)
        if not keep.any():
            return None
        out[metric] = _est(estimate(values[:, keep]))
        out["valid_queries"] = int(keep.sum())
    out["seeds"] = len(seeds)
    return out


def pair_statistics(recorded: dict[str, Any], better: str, worse: str) -> dict[str, Any] | None:
    """The paired bootstrap of 'better - worse' (mAP and R1) over the seeds both rows have; None without them."""
    seeds = common_seeds(recorded, better, worse)
    out: dict[str, Any] = {"rows": [better, worse], "seeds": len(seeds)}
    for metric in STAT_METRICS:
        a = per_query_values(recorded, better, seeds, metric)
        b = per_query_values(recorded, worse, seeds, metric)
        if a is None or b is None:
            return None
        keep = valid_queries(a, b)
        if not keep.any():
            return None
        d = paired_difference(a[:, keep], b[:, keep])
        key = "map" if metric == "mAP" else metric.lower()
        out[f"delta_{key}"] = round(d.mean, 3)
        out[f"ci95_{key}"] = [round(d.lo, 3), round(d.hi, 3)]
        out[f"verdict_{key}"] = verdict(d)
        out["valid_queries"] = int(keep.sum())
    out["verdict"] = out["verdict_map"]
    out["ci95"] = out["ci95_map"]
    return out


def paper_orders(spec, metric: str) -> list[tuple[str, str]]:
    """The spec's declared [better, worse] pairs; without any, every pair of rows whose paper numbers on `metric`
    differ (the higher first)."""
    if spec.orders:
        return [tuple(p) for p in spec.orders]
    rows = [r for r in spec.rows if r.paper.get(metric) is not None]
    pairs = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a.paper[metric] != b.paper[metric]:
                pairs.append((a.name, b.name) if a.paper[metric] > b.paper[metric] else (b.name, a.name))
    return pairs


def table_statistics(spec, recorded: dict[str, Any], metric: str = "mAP") -> dict[str, Any]:
    """Per-row intervals, the tested orderings (with the paper's difference on `metric`) and the headline."""
    paper = {r.name: r.paper for r in spec.rows}
    rows = {r.name: row_statistics(recorded, r.name) for r in spec.rows}
    orders = []
    for better, worse in paper_orders(spec, metric):
        stats = pair_statistics(recorded, better, worse)
        p_better, p_worse = paper[better].get(metric), paper[worse].get(metric)
        orders.append({"better": better, "worse": worse,
                       "paper_delta": None if p_better is None or p_worse is None else round(p_better - p_worse, 3),
                       **(stats or {"verdict": "not run"})})
    headline = None
    if spec.headline:
        stats = pair_statistics(recorded, *spec.headline)
        headline = {"rows": list(spec.headline), "verdict": stats["verdict"] if stats else "not run",
                    "delta_map": stats["delta_map"] if stats else None, "ci95": stats["ci95"] if stats else None}
    return {"rows": rows, "orders": orders, "headline": headline}


def sidecar(spec, recorded: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """The `results/<table>.json` document (issue 17, item 4): paper, suite (also as fields in "data": source,
    preset, strength), seeds, valid queries, headline, rows, the tested orderings, and how the table was made
    (command, wall time, hardware)."""
    meta = recorded.get("meta", {})
    ours = recorded.get("rows", {})
    seeds = max((s["seeds"] for s in stats["rows"].values() if s), default=0)
    queries = max((s["valid_queries"] for s in stats["rows"].values() if s), default=0)
    metrics = ("mAP", *(k for k in spec.metrics if k != "mAP"))  # mAP always: the statistics are on it
    rows = []
    for r in spec.rows:
        mine = ours.get(r.name, {})
        rows.append({"name": r.name, "variant": r.variant, "paper": dict(r.paper),
                     "ours": {k: mine.get(k) for k in metrics if mine.get(k) is not None},
                     "ci95": {k: v["ci95"] for k, v in (stats["rows"].get(r.name) or {}).items()
                              if isinstance(v, dict)},
                     "per_seed": {s: {k: e.get(k) for k in metrics if e.get(k) is not None}
                                  for s, e in mine.get("seeds", {}).items()},
                     "split": mine.get("split"), "status": mine.get("status", "not run")})
    return {"paper": spec.title, "table": spec.table, "paper_dataset": spec.paper_dataset,
            "suite": meta.get("our dataset"), "data": recorded.get("data"), "size": meta.get("size"), "seeds": seeds,
            "valid_queries": queries,
            "headline": stats["headline"], "rows": rows, "orders": stats["orders"],
            "untrained": recorded.get("untrained"),
            "command": recorded.get("command"), "wall_time_s": recorded.get("wall_time_s"),
            "hardware": meta.get("hardware"), "software": meta.get("software"),
            "wall_time": meta.get("wall time"), "date": _date(meta.get("wall time"))}


def _date(wall_time: str | None) -> str | None:
    """The date part of the meta's "wall time" line ("73.7 min, 2026-12-04" -> "2026-12-04")."""
    return wall_time.rsplit(", ", 1)[-1] if wall_time and ", " in wall_time else None
