"""The HTML report: self-contained, and it renders in headless Chromium without console errors."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from reid.errors import ReidError
from reid.evaluation.camera_pairs import camera_pair_breakdown
from reid.evaluation.metrics import evaluate_ranking
from reid.evaluation.protocols import aggregate_trials
from reid.evaluation.report import (
    AttentionMaps,
    GroupWeights,
    RankedQuery,
    ReportData,
    TemporalWeights,
    render_report,
)

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary installed "
                                    "(Debian: apt-get install chromium); CI installs it")


def _thumb(rng, color):
    img = rng.integers(0, 60, (64, 32, 3), dtype=np.uint8)
    img[8:56, 6:26] = color
    return img


def _report_data() -> ReportData:
    rng = np.random.default_rng(0)
    ng = 60
    g_pids, g_cams = rng.integers(1, 8, ng), rng.integers(1, 4, ng)
    q = rng.choice(ng, 12, replace=False)
    d = rng.random((12, ng)).astype(np.float32)
    d[np.arange(12), q] = 0
    res = evaluate_ranking(d, g_pids[q], g_pids, g_cams[q], g_cams)
    trials = aggregate_trials([evaluate_ranking(rng.random((6, 6)).astype(np.float32), np.arange(6), np.arange(6),
                                                np.zeros(6), np.ones(6)) for _ in range(10)])
    cp = camera_pair_breakdown(d, g_pids[q], g_pids, g_cams[q], g_cams, q, np.arange(ng))
    rankings = [RankedQuery(query=_thumb(rng, (200, 40, 40)), gallery=[_thumb(rng, (40, 40 + 30 * k, 200))
                                                                       for k in range(5)],
                            correct=[True, False, True, False, False], label=f"pid {i}",
                            gallery_labels=[f"pid {k}" for k in range(5)]) for i in range(2)]
    frames = np.stack([_thumb(rng, (90, 160, 90)) for _ in range(8)])
    maps = rng.random((8, 8, 4))
    return ReportData(
        title="Evaluation report — test", subtitle="synthetic, mars-official", results={"ours": res},
        trials={"ilidsvid": trials}, rows=[{"method": "paper", "R1": 85.0, "mAP": 0.7}], camera_pairs=cp,
        rankings=rankings, temporal=[TemporalWeights("tracklet 7", rng.random(8), frames)],
        groups=[GroupWeights("tracklet 7", rng.random((8, 5)), ["gender&age", "head", "up-body", "low-body", "shoes"],
                             frames)],
        attention=[AttentionMaps("tracklet 7", frames, maps)], notes=["12 queries, all with a match"],
        config={"method": "baseline", "eval": {"rerank": False}},
        history=[{"epoch": e, "train/loss": 6.0 / e, "train/ce": 4.0 / e, "train/triplet": 2.0 / e, "clips_per_s": 5.0,
                  "data_wait_s": 0.003, "val/mAP": 40.0 + e, "val/R1": 45.0 + e, "val/queries": 32}
                 for e in range(1, 6)])


def test_report_is_self_contained(tmp_path):
    path = render_report(_report_data(), tmp_path / "sub" / "report.html")
    text = path.read_text()
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert text.count('class="ok"') == 4 and text.count('class="bad"') == 6
    assert "<td>85</td><td>0.7</td>" in text  # free-form rows are shown as given
    assert "Validation: 32 queries of held-out training identities" in text
    for section in ("Metrics", "CMC curve", "Training", "Camera pairs", "Ranked gallery", "Temporal weights",
                    "per attribute group", "Spatial attention", "Configuration"):
        assert section in text


def test_report_rejects_bad_images(tmp_path):
    data = ReportData(rankings=[RankedQuery(query=np.zeros((4, 4, 3)), gallery=[], correct=[])])
    with pytest.raises(ReidError, match="uint8"):
        render_report(data, tmp_path / "r.html")


def _chromium(url: str, tmp_path, name: str) -> tuple[str, Image.Image]:
    shot = tmp_path / f"{name}.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / ('profile-' + name)}", f"--screenshot={shot}", "--window-size=1200,2000",
           "--enable-logging=stderr", "--v=0", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr, Image.open(shot).convert("RGB")


def _console_errors(log: str) -> list[str]:
    # page console output (console.error, uncaught exceptions) is logged as "...:CONSOLE(...)" lines
    return [ln for ln in log.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


@needs_chromium
def test_report_renders_in_chromium(tmp_path):
    path = render_report(_report_data(), tmp_path / "report.html")
    log, shot = _chromium(path.as_uri(), tmp_path, "report")
    assert _console_errors(log) == []
    assert shot.size == (1200, 2000)
    pixels = np.asarray(shot)
    assert pixels.std() > 20  # not a blank page
    # the green / red borders of the ranked thumbnails are on screen
    green = ((pixels[..., 0] == 46) & (pixels[..., 1] == 125) & (pixels[..., 2] == 50)).sum()
    red = ((pixels[..., 0] == 198) & (pixels[..., 1] == 40) & (pixels[..., 2] == 40)).sum()
    assert green > 100 and red > 100


@needs_chromium
def test_console_error_detection_works(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefined_function();</script></body></html>")
    log, _ = _chromium(bad.as_uri(), tmp_path, "bad")
    assert _console_errors(log)
