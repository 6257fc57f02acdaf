"""Dose-response of an ablation's headline (issue 17, item 5): the headline gap (mAP of the better row minus the
worse row) of one ablation table measured on a phenomenon suite at several nuisance strengths, as a data file and a
plot (x = strength, y = gap with its 95% interval, a zero line).

Input: the JSON sidecars `reid tune ablation --results-md` writes (tune/evidence.py `sidecar`), one per strength.
From each it takes, unchanged: `data.strength` (the suite's strength, written by the ablation as a field),
`headline.delta_map` = mean over seeds x queries of AP_a - AP_b (x 100), and `headline.ci95`, its paired percentile
bootstrap interval over queries and seeds (tune/statistics.py `paired_difference`). Nothing is recomputed here.

The sidecars must be one experiment at several strengths: the same table, headline rows, suite preset, size
(recipe and epochs) and seed count; anything else is a one-line error.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reid import storage
from reid.errors import ReidError


@dataclass(frozen=True)
class Point:
    """One strength: the headline gap and its 95% CI (mAP points), with the conditions it was measured under."""

    strength: float
    delta_map: float
    ci95: tuple[float, float]
    verdict: str
    seeds: int
    valid_queries: int
    date: str | None
    sidecar: str


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar at `path` as a dict, checked for the fields a dose-response needs (ReidError naming the field)."""
    p = storage.as_location(path)  # a local file, or one that `--results-md s3://...` wrote into a bucket
    if not storage.is_file(p):
        raise ReidError(f"dose-response: sidecar {p} not found")
    try:
        doc = json.loads(storage.read_text(p))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReidError(f"dose-response: {p} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ReidError(f"dose-response: {p} is not an ablation sidecar (a JSON object expected)")
    head = doc.get("headline")
    if not isinstance(head, dict) or not isinstance(head.get("rows"), list) or len(head["rows"]) != 2:
        raise ReidError(f"dose-response: {p} has no headline with two rows (an ablation sidecar from "
                        "`reid tune ablation --results-md` expected)")
    if not _number(head.get("delta_map")) or not (isinstance(head.get("ci95"), list) and len(head["ci95"]) == 2
                                                 and all(_number(v) for v in head["ci95"])):
        raise ReidError(f"dose-response: {p}: headline has no delta_map and ci95 (headline rows not run?)")
    data = doc.get("data")
    if not isinstance(data, dict) or not _number(data.get("strength")):
        raise ReidError(f"dose-response: {p} has no data.strength (a phenomenon suite's sidecar written by "
                        "`reid tune ablation` with this version expected; regenerate it)")
    return doc


def collect(paths: list[str | Path]) -> tuple[list[Point], dict[str, Any]]:
    """Points sorted by strength, and the conditions shared by all sidecars (table, rows, preset, size, seeds,
    hardware). ReidError when the sidecars are not one experiment at distinct strengths."""
    docs = [(str(p), read_sidecar(p)) for p in paths]  # first: a missing or foreign file is the error to report
    if len(docs) < 2:
        raise ReidError(f"dose-response: needs sidecars at two or more strengths, got {len(docs)}")
    first_path, first = docs[0]
    same = {"table": lambda d: d.get("table"), "headline rows": lambda d: d["headline"]["rows"],
            "suite preset": lambda d: d["data"].get("preset"), "size": lambda d: d.get("size"),
            "seeds": lambda d: d.get("seeds")}
    for path, doc in docs[1:]:
        for what, get in same.items():
            if get(doc) != get(first):
                raise ReidError(f"dose-response: {path} and {first_path} differ in {what} ({get(doc)!r} vs "
                                f"{get(first)!r}); one table at several strengths expected")
    points = sorted((Point(strength=float(d["data"]["strength"]), delta_map=float(d["headline"]["delta_map"]),
                           ci95=(float(d["headline"]["ci95"][0]), float(d["headline"]["ci95"][1])),
                           verdict=str(d["headline"].get("verdict")), seeds=int(d.get("seeds") or 0),
                           valid_queries=int(d.get("valid_queries") or 0), date=d.get("date"), sidecar=path)
                     for path, d in docs),
                    key=lambda pt: pt.strength)
    strengths = [pt.strength for pt in points]
    if len(set(strengths)) != len(strengths):
        raise ReidError(f"dose-response: two sidecars at the same strength ({', '.join(f'{s:g}' for s in strengths)})")
    hardware = sorted({str(d.get("hardware")) for _, d in docs if d.get("hardware")})
    shared = {"table": first.get("table"), "paper": first.get("paper"), "rows": list(first["headline"]["rows"]),
              "preset": first["data"].get("preset"), "size": first.get("size"), "seeds": first.get("seeds"),
              "hardware": hardware}
    return points, shared


def data_document(points: list[Point], shared: dict[str, Any]) -> dict[str, Any]:
    """The data file: shared conditions, the metric, and per strength the sidecar's headline as it was written."""
    return {**shared, "metric": "mAP", "y": "delta_map = mAP(rows[0]) - mAP(rows[1]), percentage points",
            "interval": "paired percentile bootstrap over queries and seeds, 95%",
            "points": [{**asdict(pt), "ci95": list(pt.ci95)} for pt in points]}


def epochs_of(size: str | None) -> str | None:
    """'4' from the sidecar's size text '...: 4 epoch(s), 56x28, ...' (None when it does not say)."""
    m = re.search(r":\s*(\d+) epoch\(s\)", size or "")
    return m.group(1) if m else None


def title(shared: dict[str, Any]) -> str:
    """Plot title: table, the two rows, seeds, epochs, hardware."""
    better, worse = shared["rows"]
    epochs = epochs_of(shared.get("size"))
    where = "; ".join(shared.get("hardware") or []) or "hardware not recorded"
    return (f"{shared['table']} on the '{shared['preset']}' suite: headline mAP gap, row a - row b\n"
            f"a = {better}\nb = {worse}\n"
            f"{shared['seeds']} seeds x {epochs or '?'} epochs per row and strength; {where}")


def plot(points: list[Point], shared: dict[str, Any], path: Path) -> Path:
    """Gap against strength with 95% CI error bars and a zero line (PNG at `path`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [pt.strength for pt in points]
    ys = [pt.delta_map for pt in points]
    below = [y - pt.ci95[0] for y, pt in zip(ys, points, strict=True)]
    above = [pt.ci95[1] - y for y, pt in zip(ys, points, strict=True)]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.axhline(0.0, color="black", lw=0.8)
    ax.errorbar(xs, ys, yerr=[below, above], fmt="o-", color="tab:blue", capsize=5, label="mean gap, 95% CI")
    for x, y, pt in zip(xs, ys, points, strict=True):
        ax.annotate(f"{y:+.1f} [{pt.ci95[0]:.1f}, {pt.ci95[1]:.1f}]", (x, pt.ci95[1]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.set_xlabel(f"nuisance strength of the '{shared['preset']}' suite (0 = matched control)")
    ax.set_ylabel("mAP gap a - b (percentage points)")
    ax.set_title(title(shared), fontsize=9)
    ax.margins(x=0.12, y=0.12)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def dose_response(paths: list[str | Path], out: Path, data_out: Path | None = None) -> tuple[Path, Path]:
    """Read the sidecars, write the data file (default: `out` with .json) and the plot; returns (png, json)."""
    if out.suffix.lower() != ".png":
        raise ReidError(f"dose-response: --out must be a .png file, got {out}")
    points, shared = collect(paths)
    data_path = data_out or out.with_suffix(".json")
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_text(json.dumps(data_document(points, shared), indent=2) + "\n")
    return plot(points, shared, out), data_path


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)

