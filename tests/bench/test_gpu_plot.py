"""`reid bench gpu`'s fed rows as a figure (reid/bench/gpu_plot.py), on recorded and made-up summaries."""

import json
import shutil
from pathlib import Path

from reid.bench.gpu_plot import busy, fed_series, plot_summary, write_fed_plot

ROOT = Path(__file__).resolve().parents[2]


def test_busy_reads_the_input_preparation_where_it_was_recorded():
    assert busy({"busy": 0.8, "gpu_busy": 0.92}) == 0.92  # input + step: what the 90 % criterion reads
    assert busy({"busy": 0.8}) == 0.8  # a run recorded before input preparation was (2026-12-04)


def test_fed_series_keeps_the_measured_order_and_drops_stores_without_rows():
    fed = {"jpeg": [{"actors": 1, "busy": 0.2, "clips_per_s": 100.0},
                    {"actors": 2, "busy": 0.4, "gpu_busy": 0.45, "clips_per_s": 190.0}],
           "video": []}
    assert fed_series(fed) == {"jpeg": ([1, 2], [0.2, 0.45], [100.0, 190.0])}


def test_no_fed_rows_no_figure(tmp_path):
    assert write_fed_plot({"fed": {"jpeg": []}}, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()


def test_the_recorded_h200_summary_plots_beside_itself(tmp_path):
    recorded = tmp_path / "gpu-2026-12-04.json"
    shutil.copy(ROOT / "docs/gpu/gpu-2026-12-04.json", recorded)
    png = plot_summary(recorded)
    assert png == tmp_path / "gpu-2026-12-04.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(fed_series(json.loads(recorded.read_text())["fed"])) == {"video", "jpeg"}
