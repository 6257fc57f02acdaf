"""`reid tune frame-weights` statistics (tune/frame_weights.py): paired over seeds and tracklets, the verdicts in
both directions, the document and plot, and the command's one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reid.cli import main
from reid.config import build_config
from reid.config.loader import save_config
from reid.evaluation.run.frame_weights import TrackletWeights
from tune.frame_weights import document, line, paired_values, plot, summarize

T = 8


def _run(kind: str, seed: int, n: int = 40) -> list[TrackletWeights]:
    """n tracklets of 2 clips x T frames; every other tracklet has lost frames. Weights: 'follow' the visibility,
    go 'against' it, or are 'uniform' (mean pooling), each with seed-dependent noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        vis = np.clip(rng.random((2, T)) * 0.5 + 0.5, 0, 1)
        if i % 2 == 0:
            vis[:, : 1 + i % 3] = 0.0
        noise = rng.normal(0, 0.02, vis.shape)
        weights = {"follow": 0.3 + 0.5 * vis + noise, "against": 0.8 - 0.5 * vis + noise,
                   "uniform": np.full(vis.shape, 1 / T)}[kind]
        out.append(TrackletWeights(f"t{i:03d}", weights, vis))
    return out


@pytest.mark.parametrize(("kind", "gap", "rho"), [("follow", "down-weights lost frames", "follows visibility"),
                                                   ("against", "up-weights lost frames", "against visibility")])
def test_verdicts_in_both_directions(kind, gap, rho):
    doc = document(["a", "b", "c"], [_run(kind, s) for s in range(3)], {"method": "fcnta"})
    assert doc["lost_gap"]["verdict"] == gap and doc["rank_correlation"]["verdict"] == rho
    assert doc["lost_gap"]["tracklets"] == 20 and len(doc["lost_gap"]["per_seed"]) == 3
    lo, hi = doc["lost_gap"]["ci95"]
    assert lo <= doc["lost_gap"]["mean"] <= hi
    assert doc["seeds"] == 3 and doc["tracklets"] == 40
    assert 0 < doc["lost_frame_share"] < 0.5


def test_mean_pooling_has_no_preference_and_no_correlation():
    doc = document(["a"], [_run("uniform", 0)], {"method": "fcnta"})
    assert doc["lost_gap"]["mean"] == 0.0 and doc["lost_gap"]["verdict"] == "no preference"
    assert doc["rank_correlation"]["verdict"] == "undefined" and doc["rank_correlation"]["tracklets"] == 0
    assert doc["weights"]["sum_per_clip"] == [pytest.approx(1.0)]
    assert doc["weights"]["coefficient_of_variation"] == [pytest.approx(0.0)]
    assert all(b["mean_relative_weight"] == pytest.approx(1.0) for b in doc["bins"] if b["frames"])
    assert "rank_correlation undefined" in line(doc)


def test_values_are_paired_over_the_tracklets_defined_in_every_run():
    a = {"t1": {"lost_gap": 0.1}, "t2": {"lost_gap": float("nan")}, "t3": {"lost_gap": 0.3}}
    b = {"t1": {"lost_gap": 0.2}, "t2": {"lost_gap": 0.5}, "t3": {"lost_gap": float("nan")}, "t4": {"lost_gap": 1}}
    values, ids = paired_values([a, b], "lost_gap")
    assert ids == ["t1"] and values.tolist() == [[0.1], [0.2]]
    assert summarize([a, b], "lost_gap")["mean"] == pytest.approx(0.15)
    assert summarize([{"t": {"lost_gap": float("nan")}}], "lost_gap")["verdict"] == "undefined"


def test_no_verdict_from_a_handful_of_tracklets():
    """One tracklet with a lost frame (a suite that almost never loses the target) keeps its mean and interval but
    gets no verdict; from MIN_TRACKLETS on, the interval decides."""
    from tune.frame_weights import MIN_TRACKLETS

    few = [{f"t{i}": {"lost_gap": 0.1 + 0.01 * s + 0.001 * i} for i in range(MIN_TRACKLETS - 1)} for s in range(3)]
    out = summarize(few, "lost_gap")
    assert out["verdict"] == f"too few tracklets ({MIN_TRACKLETS - 1} < {MIN_TRACKLETS})" and out["mean"] > 0
    enough = [{**r, "extra": {"lost_gap": 0.1}} for r in few]
    assert summarize(enough, "lost_gap")["verdict"] == "down-weights lost frames"


def test_bins_pool_frames_by_visibility(tmp_path):
    doc = document(["a"], [_run("follow", 0)], {"method": "fcnta", "data_root": "data/x"})
    bins = {b["bin"]: b for b in doc["bins"]}
    assert bins["lost (0)"]["frames"] > 0
    assert bins["lost (0)"]["mean_relative_weight"] < bins["(0.8, 1]"]["mean_relative_weight"]
    assert sum(b["frames"] for b in doc["bins"]) == 40 * 2 * T
    png = plot(doc, tmp_path / "fw.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(120)
def test_runs_of_different_configs_are_a_one_line_error(tmp_path, capsys):
    runs = []
    for name, method in (("a", "fcnta"), ("b", "astpn")):
        cfg = build_config(method, [], ["data.root=data/nowhere"])
        save_config(cfg, tmp_path / name / "config.yaml")
        runs.append(str(tmp_path / name))
    assert main(["tune", "frame-weights", *runs, "--out", str(tmp_path / "fw.json")]) == 2
    err = capsys.readouterr().err
    assert "give the seeds of one config" in err and "Traceback" not in err
    assert not (tmp_path / "fw.json").exists()


def test_the_command_reads_overrides_among_the_runs(tmp_path, capsys):
    cfg = build_config("fcnta", [], ["data.root=data/nowhere"])
    save_config(cfg, tmp_path / "a" / "config.yaml")
    # the override moves the data to a directory without a manifest: the error names it, so it was applied
    code = main(["tune", "frame-weights", str(tmp_path / "a"), f"data.root={tmp_path / 'elsewhere'}",
                 "--out", str(tmp_path / "fw.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert "elsewhere" in err and "Traceback" not in err


def test_a_document_is_json():
    doc = document(["a"], [_run("follow", 0, n=40)], {"method": "fcnta"})
    assert json.loads(json.dumps(doc))["lost_gap"]["verdict"] in {"down-weights lost frames", "no preference"}
