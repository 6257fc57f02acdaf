"""Draw the reid Grafana board's panels with matplotlib from Prometheus data (a stand-in for Grafana's renderer).

Input: the JSON that tests/ops/test_stalled_job.py writes with REID_BOARD_DATA=<file> (every panel's query
range over the live run, from Prometheus' HTTP API). Output: one PNG with the panels in the board's order.
    REID_BOARD_DATA=/tmp/board.json .venv/bin/python -m pytest tests/ops/test_stalled_job.py
    .venv/bin/python infra/grafana/render_board.py /tmp/board.json docs/img/grafana-board.png --caption "..."
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def legend_of(metric: dict[str, str], query: str) -> str:
    keys = [k for k in ("run", "term", "rank", "device", "operator", "State", "ray_train_controller_state",
                        "instance") if k in metric]
    label = " ".join(f"{k}={metric[k]}" for k in keys)
    return label or metric.get("__name__", query[:30])


def render(data: dict, out: Path, caption: str, columns: int = 4) -> Path:
    panels = data["panels"]
    titles = list(dict.fromkeys(p["title"] for p in panels))  # a panel with several queries is one axes
    rows = math.ceil(len(titles) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 2.7 * rows), squeeze=False)
    t0 = data["start"]
    for ax, title in zip(axes.flat, titles, strict=False):
        for panel in (p for p in panels if p["title"] == title):
            for series in panel["result"]:
                xs = [(float(t) - t0) for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(xs, ys, lw=1.2, label=legend_of(series["metric"], panel["query"]))
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("s since the run was submitted", fontsize=7)
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=6, loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    for ax in list(axes.flat)[len(titles):]:
        ax.axis("off")
    fig.suptitle(caption, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--caption", default="reid board, panels drawn with matplotlib from Prometheus data")
    args = p.parse_args(argv)
    render(json.loads(args.data.read_text()), args.out, args.caption)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
