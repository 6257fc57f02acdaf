"""`reid bench gpu`'s fed rows as a figure: how many decoding CPUs keep one GPU busy, per frame store.

Left: the GPU busy fraction the 90 % criterion reads (input preparation + step compute over wall time; `busy`, the
step alone, for runs recorded before input preparation was), against the decoding actors (1 CPU each), with the
0.9 line. Right: the clips/s the fed steps reached, with the GPU-only rate on a resident batch (the ceiling) dashed.
Written beside `gpu-<date>.md` as `gpu-<date>.png`; for a summary recorded earlier:

    python -c "from reid.bench.gpu_plot import plot_summary; plot_summary('docs/gpu/gpu-2026-12-04.json')"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BUSY_TARGET = 0.9


def busy(row: dict[str, Any]) -> float:
    """The busy fraction the 90 % criterion reads: with the input preparation where it was recorded."""
    return row.get("gpu_busy", row["busy"])


def fed_series(fed: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """{store: (decoding actors, busy fractions, clips/s)}, in the order measured; stores without rows left out."""
    return {store: ([r["actors"] for r in rows], [busy(r) for r in rows], [r["clips_per_s"] for r in rows])
            for store, rows in fed.items() if rows}


def write_fed_plot(summary: dict[str, Any], path: Path) -> Path | None:
    """The two panels of the module docstring at `path`; None (nothing written) when no store was fed."""
    series = fed_series(summary.get("fed") or {})
    if not series:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # loaded only for a plot
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    ax_busy, ax_rate = fig.subplots(1, 2)
    for i, (store, (actors, fractions, rates)) in enumerate(series.items()):
        ax_busy.plot(actors, fractions, "o-", color=f"C{i}", label=store)
        ax_rate.plot(actors, rates, "o-", color=f"C{i}", label=store)
    ax_busy.axhline(BUSY_TARGET, color="0.4", linestyle=":", label=f"{BUSY_TARGET:.0%} busy")
    ax_busy.set_ylim(0.0, 1.05)
    ax_busy.set_ylabel("GPU busy / wall (input + step where recorded)")
    gpu_only = summary.get("gpu_only_clips_per_s")
    if gpu_only:
        ax_rate.axhline(gpu_only, color="0.4", linestyle="--", label=f"GPU only, resident batch ({gpu_only:.0f})")
    ax_rate.set_ylabel("clips/s")
    ticks = sorted({a for actors, _, _ in series.values() for a in actors})
    for ax in (ax_busy, ax_rate):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("decoding actors (1 CPU each)")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"reid bench gpu, {summary.get('date', '')}: {summary.get('gpu', 'GPU')}, "
                 f"{summary.get('cpus', '?')} CPUs (the headline step of gpu-{summary.get('date', '')}.md)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path


def plot_summary(json_path: str | Path) -> Path | None:
    """`gpu-<date>.png` beside a summary `reid bench gpu` wrote."""
    path = Path(json_path)
    return write_fed_plot(json.loads(path.read_text()), path.with_suffix(".png"))
