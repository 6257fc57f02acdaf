"""Tables (CSV + Markdown) and plots of sweeps and ablation grids, written to local paths or URIs (reid.storage)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from reid import storage


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.3g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path | str:
    """One CSV row per dict (the union of their keys as the header) at a local path or a URI; returns it."""
    headers = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=headers)
    w.writeheader()
    w.writerows(rows)
    storage.write_text(path, text.getvalue())
    return storage.as_location(path)


# ---------------------------------------------------------------- sweeps

def search_rows(results, params: list[str], metric: str) -> list[dict[str, Any]]:
    """One row per trial of a ResultGrid: id, status, epochs run, the sampled values, the objective and R1."""
    rows = []
    for r in results:
        m = r.metrics or {}
        status = "ERROR" if r.error else ("TERMINATED" if m.get("epoch") is not None else "UNFINISHED")
        row: dict[str, Any] = {"trial": m.get("trial_id") or Path(str(r.path)).name, "status": status,
                               "epochs": m.get("epoch")}
        row.update({p: (r.config or {}).get(p) for p in params})
        row[metric] = m.get(metric)
        row["val/R1"] = m.get("val/R1")
        row["best_mAP"] = m.get("best_mAP")
        rows.append(row)
    rows.sort(key=lambda r: (r[metric] is None, -(r[metric] or 0.0)))
    return rows


def write_table(rows: list[dict[str, Any]], stem: str | Path, title: str) -> tuple[Path | str, Path | str]:
    """`<stem>.csv` and `<stem>.md` (a titled Markdown table) of the rows, at a local path or a URI."""
    csv_path = write_csv(rows, f"{stem}.csv")
    headers = list(dict.fromkeys(k for r in rows for k in r))
    md = f"# {title}\n\n" + markdown_table(headers, ([r.get(h) for h in headers] for r in rows)) + "\n"
    storage.write_text(f"{stem}.md", md)
    return csv_path, storage.as_location(f"{stem}.md")


def plot_objective(rows: list[dict[str, Any]], space, metric: str, path: str | Path) -> Path | str:
    """One panel per searched parameter: the objective of every finished trial against the parameter's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(space.params)
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    done = [r for r in rows if r.get(metric) is not None and r.get(metric) >= 0]
    for ax, key in zip(axes[0], keys, strict=True):
        dim = space.params[key]
        xs = [r[key] for r in done]
        ys = [r[metric] for r in done]
        if dim.kind == "choice" and not all(isinstance(x, int | float) for x in dim.args):
            labels = [str(a) for a in dim.args]
            xs = [labels.index(str(x)) for x in xs]
            ax.set_xticks(range(len(labels)), labels)
        ax.scatter(xs, ys, c="tab:blue")
        if dim.log_scale:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(f"{metric} (val mAP, %)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{len(done)} trials")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    storage.write_bytes(path, png.getvalue())
    return storage.as_location(path)


# ---------------------------------------------------------------- ablations

def order_agreement(paper: Sequence[float], ours: Sequence[float]) -> tuple[int, int, float]:
    """(agreeing pairs, compared pairs, Kendall tau-b) over rows that have both numbers.

    A pair is compared when the paper orders it (its values differ); it agrees when ours orders it the same way
    (a tie in ours counts as disagreement). Kendall tau-b is scipy's, NaN with fewer than two rows.
    """
    agree = total = 0
    for i in range(len(paper)):
        for j in range(i + 1, len(paper)):
            if paper[i] == paper[j]:
                continue
            total += 1
            agree += (paper[i] - paper[j]) * (ours[i] - ours[j]) > 0
    tau = float("nan")
    if len(paper) >= 2:
        from scipy.stats import kendalltau

        tau = float(kendalltau(paper, ours).statistic)
    return agree, total, tau


def primary_metric(metrics: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """mAP when the table reports it, else the first metric with paper numbers on at least two rows."""
    counts = {m: sum(1 for r in rows if r["paper"].get(m) is not None) for m in metrics}
    if counts.get("mAP", 0) >= 2:
        return "mAP"
    return next((m for m in metrics if counts[m] >= 2), metrics[0])


def ablation_table(spec, ours: dict[str, dict[str, float]], meta: dict[str, str],
                   settings: dict[str, str] | None = None, stats: dict[str, Any] | None = None
                   ) -> tuple[str, list[dict]]:
    """Markdown of a paper table regenerated: per row the paper's number beside ours for every metric, the rank
    of the row in each (on the primary metric) and whether its pairwise order agrees with the paper's.

    spec: an AblationSpec; ours: row name -> {metric: value} (percent); meta: dataset / size / hardware lines;
    settings: row name -> the resolved values of the spec's `show` keys that row ran with (a "settings" column,
    so the table says e.g. which form of an equation was run); stats: `tune.evidence.table_statistics` (a 95%
    interval column per row, the headline and the tested orderings). Returns (markdown, csv rows).
    """
    rows = [{"name": r.name, "variant": r.variant, "paper": r.paper} for r in spec.rows]
    key = primary_metric(spec.metrics, rows)
    both = [i for i, r in enumerate(rows) if r["paper"].get(key) is not None and ours.get(r["name"], {}).get(key)
            is not None]
    p_vals = [rows[i]["paper"][key] for i in both]
    o_vals = [ours[rows[i]["name"]][key] for i in both]
    agree, total, tau = order_agreement(p_vals, o_vals)
    p_rank = {i: 1 + sum(v > rows[i]["paper"][key] for v in p_vals) for i in both}
    o_rank = {i: 1 + sum(v > ours[rows[i]["name"]][key] for v in o_vals) for i in both}

    headers = ["row", "variant"] + (["settings"] if settings else [])
    for m in spec.metrics:
        headers += [f"paper {m}", f"ours {m}"]
    headers += [f"rank paper / ours ({key})", "order agrees"]
    row_stats = (stats or {}).get("rows", {})
    if any(row_stats.values()):
        headers += ["ours mAP 95% CI", "ours R1 95% CI", "seeds"]
    md_rows, csv_rows = [], []
    for i, r in enumerate(rows):
        mine = ours.get(r["name"], {})
        line: list[Any] = [r["name"], r["variant"]]
        rec: dict[str, Any] = {"row": r["name"], "variant": r["variant"]}
        if settings:
            line.append(settings.get(r["name"], "not run"))
            rec["settings"] = settings.get(r["name"])
        for m in spec.metrics:
            line += [r["paper"].get(m), mine.get(m)]
            rec[f"paper_{m}"], rec[f"ours_{m}"] = r["paper"].get(m), mine.get(m)
        if i in both:
            pairs = [(j, p_vals[both.index(j)] - p_vals[both.index(i)]) for j in both if j != i]
            ok = sum(1 for j, d in pairs if d != 0 and d * (o_vals[both.index(j)] - o_vals[both.index(i)]) > 0)
            n = sum(1 for _, d in pairs if d != 0)
            mark = f"{ok}/{n} {'✓' if ok == n else '✗'}" if n else "—"
            line += [f"{p_rank[i]} / {o_rank[i]}", mark]
            rec.update(rank_paper=p_rank[i], rank_ours=o_rank[i], pairs_agree=ok, pairs=n)
        else:
            line += ["—", "no paper number" if mine else "not run"]
        if any(row_stats.values()):
            st = row_stats.get(r["name"])
            line += ([_ci(st["mAP"]["ci95"]), _ci(st["R1"]["ci95"]), st["seeds"]] if st else ["—", "—", "—"])
            if st:
                rec.update(map_ci_lo=st["mAP"]["ci95"][0], map_ci_hi=st["mAP"]["ci95"][1], seeds=st["seeds"])
        md_rows.append(line)
        csv_rows.append(rec)
    parts = [f"# {spec.title}", ""]
    parts += [f"- **{k}**: {v}" for k, v in meta.items()]
    parts += [f"- **paper's numbers measured on**: {spec.paper_dataset}", ""]
    head = (stats or {}).get("headline")
    if head:
        delta = "—" if head["delta_map"] is None else f"{head['delta_map']:+.1f}"
        parts += [f"**Headline** ({head['rows'][0]} vs {head['rows'][1]}): **{head['verdict']}** at 95% "
                  f"(ours: mAP difference {delta}, 95% CI {_ci(head['ci95'])}).", ""]
    parts += [markdown_table(headers, md_rows), ""]
    if (stats or {}).get("orders"):
        probe = spec.probe
        whose = f"Our hypotheses (a probe, not a table of the paper: {probe})" if probe else "The paper's orderings"
        parts += [f"{whose}, tested (paired bootstrap over queries and seeds, 95%; `holds`: the whole interval of "
                  "our difference better - worse is above 0, `reversed`: below 0, `tie`: it holds 0):", ""]
        first = "hypothesis (better > worse)" if probe else "paper's order (better > worse)"
        parts += [markdown_table([first, f"paper Δ {key}", "ours Δ mAP", "95% CI",
                                  "verdict", "ours Δ R1", "95% CI (R1)", "verdict (R1)"],
                                 ([f"{o['better']} > {o['worse']}", o.get("paper_delta"), o.get("delta_map"),
                                   _ci(o.get("ci95_map")), o["verdict"], o.get("delta_r1"), _ci(o.get("ci95_r1")),
                                   o.get("verdict_r1", "—")] for o in stats["orders"])), ""]
    if total:
        parts.append(f"Ordering on {key}: {agree}/{total} row pairs ordered as in the paper "
                     f"({100.0 * agree / total:.0f} %), Kendall tau-b = {fmt(tau, 2)} over {len(both)} rows with "
                     f"both numbers.")
    else:
        parts.append(f"Ordering on {key}: fewer than two rows have both a paper number and ours; nothing to compare.")
    parts.append("")
    parts.append("Numbers are percentages (CMC rank-k accuracy, mAP). Ours are means over the seeds of the test split "
                 "of our dataset, evaluated once per run with the checkpoint chosen on the validation split "
                 "(held-out training identities); they are not comparable in absolute value to the paper's, which "
                 "were measured on a different dataset and recipe; the ordering of the rows is what is compared.")
    return "\n".join(parts) + "\n", csv_rows


def _ci(interval: Sequence[float] | None) -> str:
    return "—" if not interval else f"[{interval[0]:.1f}, {interval[1]:.1f}]"
