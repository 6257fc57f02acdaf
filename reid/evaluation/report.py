"""A self-contained HTML evaluation report: inline CSS, every image a base64 data URI, no external resources.

Sections (each only when its data is given): metrics table (per protocol / trial summary / free rows), CMC curves,
training curves (loss terms, validation mAP / R1, throughput by epoch; reid.evaluation.training_curves),
the MARS camera-pair breakdown, top-k ranked gallery thumbnails per sampled query (green border = correct identity,
red = wrong), temporal weights per frame, per-attribute-group temporal weights as a groups x frames heat map (as in
figure 6 of the adfta paper: white = small, red = large), and spatial attention maps overlaid on frames.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from reid.errors import ReidError
from reid.evaluation.camera_pairs import CameraPairResult
from reid.evaluation.metrics import RankResult
from reid.evaluation.protocols import TrialSummary


@dataclass
class RankedQuery:
    """One query and its top-k gallery items. Images: uint8 [H, W, 3] (or [H, W])."""

    query: np.ndarray
    gallery: Sequence[np.ndarray]
    correct: Sequence[bool]
    label: str = ""
    gallery_labels: Sequence[str] = ()


@dataclass
class TemporalWeights:
    """Per-frame weights [T] of one tracklet; optional frames uint8 [T, H, W, 3] shown under the plot."""

    name: str
    weights: np.ndarray
    frames: np.ndarray | None = None


@dataclass
class GroupWeights:
    """Per-frame weights of each attribute group, [T, G], with the group names; optional frames [T, H, W, 3]."""

    name: str
    weights: np.ndarray
    groups: Sequence[str]
    frames: np.ndarray | None = None


@dataclass
class AttentionMaps:
    """Spatial attention maps [T, h, w] (any scale) over frames uint8 [T, H, W, 3]."""

    name: str
    frames: np.ndarray
    maps: np.ndarray


@dataclass
class ReportData:
    title: str = "Evaluation report"
    subtitle: str = ""
    results: dict[str, RankResult] = field(default_factory=dict)
    trials: dict[str, TrialSummary] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # free-form rows, shown as given (e.g. paper numbers)
    camera_pairs: CameraPairResult | None = None
    rankings: list[RankedQuery] = field(default_factory=list)
    temporal: list[TemporalWeights] = field(default_factory=list)
    groups: list[GroupWeights] = field(default_factory=list)
    attention: list[AttentionMaps] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None
    cmc_max_rank: int = 20
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch training metrics (metrics.jsonl)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:24px;margin-bottom:4px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left} .sub{color:#666} .note{color:#555;font-size:13px}
.rank{display:flex;align-items:flex-end;gap:6px;margin:8px 0;flex-wrap:wrap}
.rank figure{margin:0;text-align:center;font-size:11px} .rank img{height:96px;border:4px solid transparent}
.q img{border-color:#1565c0!important} .ok img{border-color:#2e7d32!important} .bad img{border-color:#c62828!important}
.strip{display:flex;gap:3px;flex-wrap:wrap} .strip img{height:80px} pre{background:#f7f7f7;padding:8px;font-size:12px}
"""


def _png(img: np.ndarray | Image.Image, height: int | None = None) -> str:
    im = img if isinstance(img, Image.Image) else Image.fromarray(_uint8(img))
    if height is not None and im.height != height:
        im = im.resize((max(1, round(im.width * height / im.height)), height), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _uint8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        raise ReidError(f"report images must be uint8 arrays [H, W, 3] or [H, W], got {a.dtype} {a.shape}")
    return a


def _fig_png(fig: Figure) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str, alt: str, cls: str = "") -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}"{f" class={cls!r}" if cls else ""}>'


def _fmt(v: Any, percent: bool = True) -> str:
    """Fractions (the metrics' own unit) are shown as percentages; free-form rows are shown as given."""
    if isinstance(v, float | np.floating):
        return "n/a" if np.isnan(v) else f"{100 * v:.1f}" if percent else f"{v:.4g}"
    return html.escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], percent: bool = True) -> str:
    th = "".join(f'<th class="l">{html.escape(h)}</th>' if i == 0 else f"<th>{html.escape(h)}</th>"
                 for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="l">{_fmt(c, percent)}</td>' if i == 0 else
                                    f"<td>{_fmt(c, percent)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _metrics(data: ReportData) -> str:
    out = []
    if data.results:
        rows = [[name, r.rank(1), r.rank(5), r.rank(10), r.rank(20), r.mAP, r.mINP, r.num_valid_queries,
                 r.num_queries_without_match, f"{r.ap_mode} / {r.no_match}"] for name, r in data.results.items()]
        out.append(_table(["evaluation", "R1", "R5", "R10", "R20", "mAP", "mINP", "queries", "without match",
                           "AP / no-match"], rows))
        out.append('<p class="note">Percentages. Queries without a valid match are listed, and treated as the '
                   'last column says ("skip": left out of the averages; "zero": counted as misses).</p>')
    for name, t in data.trials.items():
        keys = list(t.mean)
        out.append(f"<p><b>{html.escape(name)}</b>: mean &plusmn; std over {t.num_trials} trials</p>")
        out.append(_table(["", *keys], [["mean", *[t.mean[k] for k in keys]], ["std", *[t.std[k] for k in keys]]]))
    if data.rows:
        cols = list(dict.fromkeys(k for r in data.rows for k in r))
        out.append(_table(cols, [[r.get(c, "") for c in cols] for r in data.rows], percent=False))
    return "".join(out)


def _cmc_plot(data: ReportData) -> str:
    curves = {k: r.cmc for k, r in data.results.items()}
    curves.update({f"{k} (mean of {t.num_trials})": t.cmc_mean for k, t in data.trials.items()})
    if not curves:
        return ""
    fig = Figure(figsize=(6.5, 3.8), dpi=100)
    ax = fig.add_subplot()
    for name, cmc in curves.items():
        n = min(data.cmc_max_rank, cmc.size)
        ax.plot(np.arange(1, n + 1), 100 * cmc[:n], marker="o", ms=3, label=name)
    ax.set(xlabel="rank", ylabel="matching rate (%)", title="CMC", ylim=(0, 100.5))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return "<h2>CMC curve</h2>" + _img(_fig_png(fig), "CMC curve")


def _training(history: Sequence[dict[str, Any]]) -> str:
    from reid.evaluation.training_curves import training_figure

    fig = training_figure(history)
    if fig is None:
        return ""
    queries = next((h["val/queries"] for h in reversed(history) if "val/queries" in h), None)
    note = (f'<p class="note">Validation: {queries} queries of held-out training identities (data.val_identities), '
            f"the score that picks the best checkpoint; the metrics above are the test split's.</p>"
            if queries is not None else "")
    return "<h2>Training</h2>" + _img(_fig_png(fig), "training curves") + note


def _heat(matrix: np.ndarray, xlabels: Sequence[str], ylabels: Sequence[str], title: str, xlabel: str,
          ylabel: str, cmap: str, annotate: bool, vmax: float | None = None) -> str:
    fig = Figure(figsize=(max(3.5, 0.55 * len(xlabels) + 2), max(2.2, 0.45 * len(ylabels) + 1.2)), dpi=100)
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, aspect="auto", vmin=0, vmax=vmax)
    ax.set_xticks(range(len(xlabels)), labels=list(xlabels), fontsize=8)
    ax.set_yticks(range(len(ylabels)), labels=list(ylabels), fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if annotate:
        for (i, j), v in np.ndenumerate(matrix):
            dark = np.isnan(v) or v < 0.5 * (vmax if vmax is not None else np.nanmax(matrix))
            ax.text(j, i, "-" if np.isnan(v) else f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _img(_fig_png(fig), title)


def _camera_pairs(cp: CameraPairResult) -> str:
    labels = [str(c) for c in cp.cameras]
    return ("<h2>Camera pairs</h2>" + _heat(cp.ap, labels, labels, "AP by camera pair", "gallery camera",
                                            "query camera", "viridis", True, 1.0)
            + _heat(cp.r1, labels, labels, "R1 by camera pair", "gallery camera", "query camera", "viridis", True,
                    1.0)
            + f'<p class="note">Mean of the off-diagonal cells: mAP {_fmt(cp.offdiag_mAP)}, '
              f"R1 {_fmt(cp.offdiag_r1)}.</p>")


def _rankings(items: Sequence[RankedQuery]) -> str:
    out = ["<h2>Ranked gallery for sampled queries</h2>"]
    for q in items:
        if len(q.correct) != len(q.gallery):
            raise ReidError(f"ranked query '{q.label}': {len(q.gallery)} gallery images but "
                            f"{len(q.correct)} correct flags")
        figs = [f'<figure class="q">{_img(_png(q.query, 96), "query")}<figcaption>query '
                f"{html.escape(q.label)}</figcaption></figure>"]
        for k, (g, ok) in enumerate(zip(q.gallery, q.correct, strict=True)):
            cap = q.gallery_labels[k] if k < len(q.gallery_labels) else ""
            figs.append(f'<figure class="{"ok" if ok else "bad"}">{_img(_png(g, 96), f"rank {k + 1}")}'
                        f"<figcaption>{k + 1}. {html.escape(cap)}</figcaption></figure>")
        out.append(f'<div class="rank">{"".join(figs)}</div>')
    return "".join(out)


def _strip(frames: np.ndarray | None) -> str:
    if frames is None:
        return ""
    return '<div class="strip">' + "".join(_img(_png(f, 80), f"frame {t + 1}") for t, f in enumerate(frames)) + \
        "</div>"


def _temporal(items: Sequence[TemporalWeights]) -> str:
    out = ["<h2>Temporal weights</h2>"]
    for tw in items:
        w = np.asarray(tw.weights, dtype=np.float64).ravel()
        fig = Figure(figsize=(max(3.0, 0.4 * w.size + 1.5), 2.2), dpi=100)
        ax = fig.add_subplot()
        ax.bar(np.arange(1, w.size + 1), w, color="#c62828")
        ax.set(title=tw.name, xlabel="frame", ylabel="weight")
        fig.tight_layout()
        out.append(_img(_fig_png(fig), f"temporal weights {tw.name}") + _strip(tw.frames))
    return "".join(out)


def _groups(items: Sequence[GroupWeights]) -> str:
    out = ["<h2>Temporal weights per attribute group</h2>"]
    for gw in items:
        w = np.asarray(gw.weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != len(gw.groups):
            raise ReidError(f"group weights '{gw.name}' must be [T, G] with G = {len(gw.groups)} group names, "
                            f"got shape {w.shape}")
        frames = [str(t + 1) for t in range(w.shape[0])]
        out.append(_strip(gw.frames) + _heat(w.T, frames, list(gw.groups), gw.name, "frame", "", "Reds", False))
    return "".join(out)


def _overlay(frame: np.ndarray, amap: np.ndarray) -> Image.Image:
    frame = _uint8(frame)
    m = np.asarray(amap, dtype=np.float64)
    m = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m)
    heat = Image.fromarray((colormaps["jet"](m)[..., :3] * 255).astype(np.uint8))
    heat = heat.resize((frame.shape[1], frame.shape[0]), Image.BILINEAR)
    base = Image.fromarray(frame).convert("RGB")
    return Image.blend(base, heat, 0.45)


def _attention(items: Sequence[AttentionMaps]) -> str:
    out = ["<h2>Spatial attention</h2>"]
    for am in items:
        if len(am.frames) != len(am.maps):
            raise ReidError(f"attention '{am.name}': {len(am.frames)} frames but {len(am.maps)} maps")
        imgs = "".join(_img(_png(_overlay(f, m), 96), f"attention frame {t + 1}")
                       for t, (f, m) in enumerate(zip(am.frames, am.maps, strict=True)))
        out.append(f'<p>{html.escape(am.name)}</p><div class="strip">{imgs}</div>')
    return "".join(out)


def render_report(data: ReportData, path: str | Path) -> Path:
    """Write the report to `path` (one HTML file) and return the path."""
    parts = [f"<h1>{html.escape(data.title)}</h1>"]
    if data.subtitle:
        parts.append(f'<p class="sub">{html.escape(data.subtitle)}</p>')
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in data.notes]
    if data.results or data.trials or data.rows:
        parts.append("<h2>Metrics</h2>" + _metrics(data))
    parts.append(_cmc_plot(data))
    parts.append(_training(data.history))
    if data.camera_pairs is not None:
        parts.append(_camera_pairs(data.camera_pairs))
    if data.rankings:
        parts.append(_rankings(data.rankings))
    if data.temporal:
        parts.append(_temporal(data.temporal))
    if data.groups:
        parts.append(_groups(data.groups))
    if data.attention:
        parts.append(_attention(data.attention))
    if data.config is not None:
        parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(data.config, indent=2, default=str)) +
                     "</pre>")
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>'
           f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out
