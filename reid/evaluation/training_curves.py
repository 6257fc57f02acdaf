"""The report's training curves: a run's per-epoch history (metrics.jsonl, one dict per epoch) as one figure.

Panels, each only when the history has its keys: the training loss and its terms (`train/<term>`) by epoch; the
validation mAP and R1 by epoch (`val/mAP`, `val/R1`; held-out training identities, not the test split), the best
epoch marked; rank 0's throughput (`clips_per_s`) with the data wait per step (`data_wait_s`, in ms, on a second axis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of the entries that hold a finite `key` (validation runs every eval_every epochs only)."""
    pts = [(int(h["epoch"]), float(h[key])) for h in history
           if "epoch" in h and isinstance(h.get(key), int | float) and math.isfinite(h[key])]
    return [e for e, _ in pts], [v for _, v in pts]


def loss_keys(history: Sequence[dict[str, Any]]) -> list[str]:
    """The loss curves to draw: `train/loss` first, then every other `train/<term>` in name order."""
    keys = sorted({k for h in history for k in h if k.startswith("train/")})
    return sorted(keys, key=lambda k: (k != "train/loss", k))


def best_epoch(history: Sequence[dict[str, Any]]) -> tuple[int, float] | None:
    """(epoch, val/mAP) of the highest validation mAP, the first on ties; None without validation."""
    epochs, maps = _series(history, "val/mAP")
    if not epochs:
        return None
    i = max(range(len(maps)), key=lambda j: (maps[j], -j))
    return epochs[i], maps[i]


def training_figure(history: Sequence[dict[str, Any]]) -> Figure | None:
    """One row of panels (module docstring); None when the history has no epoch with a loss."""
    losses = [k for k in loss_keys(history) if _series(history, k)[0]]
    if not losses:
        return None
    has_val = bool(_series(history, "val/mAP")[0])
    has_speed = bool(_series(history, "clips_per_s")[0])
    n = 1 + has_val + has_speed
    fig = Figure(figsize=(3.9 * n, 3.2), dpi=100)
    axes = fig.subplots(1, n, squeeze=False)[0]
    ax = axes[0]
    for k in losses:
        ax.plot(*_series(history, k), marker="o", ms=3, lw=2.2 if k == "train/loss" else 1.2,
                label=k.removeprefix("train/"))
    ax.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax.legend(fontsize=8)
    i = 1
    if has_val:
        ax = axes[i]
        i += 1
        for k in ("val/mAP", "val/R1"):
            ep, v = _series(history, k)
            if ep:
                ax.plot(ep, v, marker="o", ms=3, label=k.removeprefix("val/"))
        best = best_epoch(history)
        title = "validation"
        if best is not None:
            ax.axvline(best[0], color="#888", ls=":", lw=1)
            title += f": best mAP {best[1]:.1f}, epoch {best[0]}"
        ax.set(xlabel="epoch", ylabel="%", title=title, ylim=(0, 100.5))
        ax.legend(fontsize=8, loc="lower right")
    if has_speed:
        ax = axes[i]
        ep, v = _series(history, "clips_per_s")
        ax.plot(ep, v, marker="o", ms=3, color="#2e7d32", label="clips/s")
        ax.set(xlabel="epoch", ylabel="clips/s", title="throughput (rank 0)")
        ax.set_ylim(bottom=0)
        ep, w = _series(history, "data_wait_s")
        if ep:
            twin = ax.twinx()
            twin.plot(ep, [1000 * x for x in w], marker="s", ms=3, ls="--", color="#c62828", label="data wait")
            twin.set_ylabel("data wait, ms/step", color="#c62828")
            twin.set_ylim(bottom=0)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
