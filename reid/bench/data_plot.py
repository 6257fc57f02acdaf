"""`reid bench data --plot`: what a fit's data path delivers over time, per frame store, as one figure.

For each store one panel: the clips delivered against the seconds since the fit opened its stream, as the consumer
(a Train worker) saw them, for the fit with N decoding actors and the fit with 1 (the median fit of the repeats by
fit-level rate); the start-up (fit start to the first batch) shaded; each epoch's first batch marked; and, dashed,
what N processes at the raw decode limit per core would deliver from the same first batch (slope N x raw, the
`fit-level pipeline / raw decode per core >= 0.9` target's reference) and what 1 would. A pipeline at the limit
runs along its dashed line; start-up, epoch boundaries and stalls show as flat stretches below it.

Curve (per fit), with a_1 <= a_2 <= ... the batch arrivals in seconds since the fit start, epoch after epoch, and
c clips per batch:  delivered(a_i) = i * c, a step at each arrival (batches of one task arrive together).
Reference:  ref(t) = c + N * raw * (t - a_1) for t >= a_1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoreTimeline:
    """One store's fits: batch arrivals per epoch in seconds since the fit start ([epoch][batch]), N and 1 actor."""

    arrivals_n: list[list[float]]
    arrivals_1: list[list[float]]
    raw: float  # clips/s of one raw decode process


def delivery_curve(arrivals: list[list[float]], clips_per_batch: int) -> tuple[list[float], list[int]]:
    """(times, clips delivered by then): a point per batch, in arrival order; [] for a fit without batches."""
    times = sorted(t for epoch in arrivals for t in epoch)
    return times, [clips_per_batch * (i + 1) for i in range(len(times))]


def limit_line(first: float, last: float, clips_per_batch: int, rate: float) -> tuple[list[float], list[float]]:
    """The two end points of `rate` clips/s from the first batch (`first`, one batch delivered) to `last`."""
    return [first, last], [float(clips_per_batch), clips_per_batch + rate * (last - first)]


def epoch_starts(arrivals: list[list[float]]) -> list[float]:
    """Each epoch's first batch, after the first epoch's (the boundaries a fit pays between its epochs)."""
    return [epoch[0] for epoch in arrivals[1:] if epoch]


def write_plot(path: Path, title: str, stores: dict[str, StoreTimeline], workers: int, clips_per_batch: int) -> Path:
    """One panel per store (curves and lines as in the module docstring); a PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # loaded only for a plot
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0 * len(stores), 4.4), layout="constrained")
    axes = fig.subplots(1, len(stores), squeeze=False)[0]
    for ax, (name, s) in zip(axes, stores.items(), strict=True):
        tn, cn = delivery_curve(s.arrivals_n, clips_per_batch)
        t1, c1 = delivery_curve(s.arrivals_1, clips_per_batch)
        end = max(tn[-1:] + t1[-1:] + [1.0])
        if tn:
            ax.axvspan(0.0, tn[0], color="0.9", label=f"start-up, {workers} actors ({tn[0]:.1f} s)")
            ax.step(tn, cn, where="post", color="C0", label=f"pipeline, {workers} decoding actors")
            ax.plot(*limit_line(tn[0], end, clips_per_batch, workers * s.raw), "--", color="C0",
                    label=f"{workers} x raw decode ({workers * s.raw:.0f} clips/s)")
            for i, t in enumerate(epoch_starts(s.arrivals_n)):
                ax.axvline(t, color="C0", linestyle=":", linewidth=0.8, label="epoch starts" if i == 0 else None)
        if t1 and workers > 1:
            ax.step(t1, c1, where="post", color="C1", label="pipeline, 1 decoding actor")
            ax.plot(*limit_line(t1[0], end, clips_per_batch, s.raw), "--", color="C1",
                    label=f"1 x raw decode ({s.raw:.0f} clips/s)")
        top = max(cn[-1:] + c1[-1:] + [clips_per_batch])
        ax.set_xlim(0.0, end * 1.02)
        ax.set_ylim(0.0, top * 1.15)
        ax.set_title(f"{name} store", fontsize=10)
        ax.set_xlabel("seconds since the fit opened its stream")
        ax.set_ylabel("clips delivered")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path
