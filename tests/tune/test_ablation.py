"""Ablation specs: loading, row configs, and the side-by-side table rendered from recorded results (no training)."""

from __future__ import annotations

import itertools
import json

import pytest

from reid.config import ConfigError, validate_overrides
from tune.ablation import base_config, list_specs, load_spec, render, row_overrides
from tune.report import order_agreement


def naive_kendall_tau_b(x, y):
    """Kendall tau-b straight from its definition: (C - D) / sqrt((n0 - n1) (n0 - n2))."""
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = (x[i] > x[j]) - (x[i] < x[j]), (y[i] > y[j]) - (y[i] < y[j])
        if sx == 0 and sy == 0:
            continue
        if sx == 0:
            tx += 1
        elif sy == 0:
            ty += 1
        elif sx == sy:
            c += 1
        else:
            d += 1
    return (c - d) / ((c + d + tx) * (c + d + ty)) ** 0.5


@pytest.mark.timeout(60)
def test_order_agreement_against_naive_definition():
    paper = [66.1, 68.2, 69.5, 70.3, 70.6, 71.2, 71.0, 70.5]
    ours = [10.0, 12.0, 11.0, 15.0, 15.0, 16.0, 14.0, 13.0]
    agree, total, tau = order_agreement(paper, ours)
    assert total == 28 - 0  # all paper values distinct
    expected = sum(1 for i, j in itertools.combinations(range(8), 2) if (paper[i] - paper[j]) * (ours[i] - ours[j]) > 0)
    assert agree == expected
    assert tau == pytest.approx(naive_kendall_tau_b(paper, ours))
    assert order_agreement([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])[:2] == (3, 3)


@pytest.mark.timeout(60)
def test_every_spec_loads_and_every_row_is_a_valid_config_on_synthetic():
    names = list_specs()
    assert {"adfta-table4", "astpn-fig5", "asanet-table5", "posetap-table1", "fcnta-components"} <= set(names)
    for name in ("adfta-table4", "astpn-table4", "posetap-table1-prid2011"):
        spec = load_spec(name)
        base = base_config(spec, "synthetic", [], [])
        for row in spec.rows:
            ov = row_overrides(spec, row, "synthetic", "smoke", {}, None)
            assert "train.init_from" not in ov and ov.get("data.synth_preset") == "tiny"
            cfg = validate_overrides(base, ov)
            assert cfg.data.dataset == "synthetic" and cfg.train.epochs == 1
            assert cfg.variant == row.variant


@pytest.mark.timeout(60)
def test_bad_spec_is_a_clear_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("table: x\nmethod: adfta\ntitle: t\npaper_dataset: MARS\nmetrics: [mAP, rank1]\nrows: []\n")
    with pytest.raises(ConfigError, match="metrics"):
        load_spec(str(f))


@pytest.mark.timeout(60)
def test_table_renders_paper_numbers_beside_recorded_results(tmp_path):
    spec = load_spec("adfta-table4")
    # recorded results of a run (as results.json holds them); rows C and H are missing / failed
    ours = {"A: baseline (avg pooling, softmax)": 20.0, "B: +A": 22.0, "D: +F +A (average fusion)": 25.0,
            "E: +F +A +T, sigma 0.3": 24.0, "F: +F +A +T, sigma 0.5 (final model)": 26.0,
            "G: +F +A +T, sigma 0.9": 27.0}
    recorded = {"table": "adfta-table4", "meta": {"our dataset": "synthetic (recorded)", "size": "smoke",
                                                  "hardware": "test"},
                "rows": {n: {"mAP": v, "R1": v + 10, "epochs": 1, "queries": 40, "status": "TERMINATED"}
                         for n, v in ours.items()}}
    recorded["rows"]["H: +F +A +T, sigma 1.2"] = {"status": "ERROR", "error": "boom"}
    (tmp_path / "results.json").write_text(json.dumps(recorded))
    md = render(spec, json.loads((tmp_path / "results.json").read_text()), tmp_path / "table").read_text()
    lines = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| ")}
    a_row = lines["A: baseline (avg pooling, softmax)"].split(" | ")
    assert a_row[2:6] == ["66.1", "20.0", "79.0", "30.0"]  # paper mAP, ours mAP, paper R1, ours R1
    assert "| — | — |" in lines["C: +A +T (frame level), sigma 0.5"] and "not run" in lines["C: +A +T (frame level), sigma 0.5"]
    assert "Rows that failed: H: +F +A +T, sigma 1.2: boom" in md
    assert "paper's numbers measured on**: MARS" in md and "synthetic (recorded)" in md
    assert "40 valid queries: one query moves R1 by 2.5 points" in md
    # paper order on the 6 rows: A < B < D < E < G < F; ours: A < B < E < D < F < G -> 13 of 15 pairs agree
    assert "13/15 row pairs ordered as in the paper" in md
    f_row = lines["F: +F +A +T, sigma 0.5 (final model)"]
    assert "1 / 2" in f_row and "4/5 ✗" in f_row
    assert (tmp_path / "table.csv").read_text().startswith("row,variant,paper_mAP,ours_mAP")
