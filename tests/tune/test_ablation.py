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


def test_a_probe_says_its_orders_are_our_hypotheses_not_the_papers():
    from tune.report import ablation_table

    order = {"better": "a", "worse": "b", "delta_map": 1.0, "ci95_map": [0.5, 1.5], "verdict": "holds"}
    stats = {"orders": [order]}
    probe = load_spec("fcnta-scale-probe")
    assert probe.probe and len(probe.rows) == 4 and probe.orders[0] == probe.headline
    md, _ = ablation_table(probe, {}, {}, stats=stats)
    assert "Our hypotheses (a probe, not a table of the paper: " in md and "| hypothesis (better > worse) |" in md
    assert "The paper's orderings" not in md
    md, _ = ablation_table(load_spec("fcnta-components"), {}, {}, stats=stats)
    assert "The paper's orderings, tested" in md and "Our hypotheses" not in md


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smoke_run_writes_table_statistics_and_sidecar(tmp_path):
    """`reid tune ablation --smoke` end to end on a small Ray cluster: 2 rows x 2 seeds as 4 in-process trials on the
    tiny set; every trial keeps its test split's per-query scores, the table carries intervals and the paper's
    orderings with verdicts, and the JSON sidecar has the issue's schema and is copied beside --results-md.
    The experiment lives in an S3 bucket (moto on 127.0.0.1, `--out s3://...`): the trials' runs, their test.json,
    results.json and the table are read back from there."""
    import ray

    from reid import storage
    from reid.cli import main
    from tests.ops.storage_server import s3_server
    from tune.runner import start_local_ray

    with s3_server() as s3:  # before Ray: its workers inherit AWS_ENDPOINT_URL
        start_local_ray(num_cpus=2, object_store_memory=300 * 1024**2, attempts=5)
        try:
            dest = tmp_path / "results" / "adfta-table4.md"
            code = main(["tune", "ablation", "adfta-table4", "--smoke", "--seeds", "2", "--rows", "0,5",
                         "--out", s3.uri("ablations"), "--cpus-per-trial", "1", "--results-md", str(dest),
                         f"data.root={tmp_path / 'synth'}", "ray.num_workers=0", "model.pretrained=false",
                         "data.height=64", "data.width=32", "data.seq_len=2", "data.batches_per_epoch=1",
                         "data.test_sampler=restricted", "ray.object_store_memory=314572800"])
        finally:
            ray.shutdown()
        assert code == 0
        exp = s3.uri("ablations", "adfta-table4-synthetic-smoke")
        recorded = json.loads(storage.read_text(storage.join(exp, "results.json")))
        table_json = json.loads(storage.read_text(storage.join(exp, "table.json")))
        runs = storage.list_dir(storage.join(exp, "runs"))
        assert len(runs) == 4 and all(storage.is_file(storage.join(exp, "runs", r, "test.json")) for r in runs)
    names = ["A: baseline (avg pooling, softmax)", "F: +F +A +T, sigma 0.5 (final model)"]
    assert sorted(recorded["per_query"]) == sorted(names)
    for name in names:
        assert sorted(recorded["rows"][name]["seeds"]) == ["0", "1"]
        assert recorded["rows"][name]["split"] == "test"
        assert all(len(s["ap"]) == len(recorded["query_ids"]) for s in recorded["per_query"][name].values())
    side = json.loads(dest.with_suffix(".json").read_text())
    assert side == table_json
    for key in ("paper", "suite", "seeds", "valid_queries", "headline", "rows", "command", "wall_time_s", "hardware"):
        assert side[key] is not None, key
    assert side["seeds"] == 2 and side["valid_queries"] > 0
    assert side["untrained"]["row"] == names[0] and 0 <= side["untrained"]["mAP"] <= 100
    head = side["headline"]
    assert head["rows"] == [names[1], names[0]] and head["verdict"] in ("holds", "reversed", "tie")
    assert head["ci95"][0] <= head["delta_map"] <= head["ci95"][1]
    assert "--seeds 2" in side["command"] and side["command"].startswith("reid tune ablation adfta-table4 --smoke")
    md = dest.read_text()
    assert "**Headline**" in md and "The paper's orderings, tested" in md and "regenerate with" in md


@pytest.mark.timeout(60)
def test_recorded_per_query_scores_give_intervals_verdicts_and_the_sidecar(tmp_path):
    """Constructed per-query scores with a known answer: F's AP is A's + 0.2 on every query (holds), B equals A
    (tie), and D is A's - 0.2 (the paper's D > B is reversed). The sidecar has the issue's schema."""
    import numpy as np

    spec = load_spec("adfta-table4")
    rng = np.random.default_rng(0)
    base = {s: rng.uniform(0.1, 0.7, size=60) for s in ("0", "1", "2")}
    shift = {"A: baseline (avg pooling, softmax)": 0.0, "B: +A": 0.0, "D: +F +A (average fusion)": -0.2,
             "F: +F +A +T, sigma 0.5 (final model)": 0.2}
    per_query = {name: {s: {"ap": (base[s] + d).tolist(), "first_match_rank": [1 if a + d > 0.4 else 3
                                                                              for a in base[s]]}
                        for s in base} for name, d in shift.items()}
    per_query["B: +A"]["0"]["ap"][0] = None  # a query without a valid match is left out everywhere
    rows = {name: {"mAP": 100 * float(np.mean([np.mean(base[s] + d) for s in base])), "R1": 50.0, "queries": 60,
                   "status": "TERMINATED", "split": "test", "seeds": {s: {"mAP": 1.0} for s in base}}
            for name, d in shift.items()}
    recorded = {"table": "adfta-table4", "meta": {"our dataset": "synthetic (constructed)", "hardware": "test"},
                "rows": rows, "per_query": per_query, "query_ids": [f"q{i}" for i in range(60)],
                "command": "reid tune ablation adfta-table4 --full --seeds 3", "wall_time_s": 12.5,
                "untrained": {"row": "A: baseline (avg pooling, softmax)", "seed": 0, "mAP": 10.0, "R1": 8.0}}
    md = render(spec, recorded, tmp_path / "table").read_text()
    side = json.loads((tmp_path / "table.json").read_text())
    assert side["seeds"] == 3 and side["valid_queries"] == 60 and side["wall_time_s"] == 12.5
    assert side["suite"] == "synthetic (constructed)" and side["command"].endswith("--seeds 3")
    head = side["headline"]
    assert head["verdict"] == "holds" and head["delta_map"] == pytest.approx(20.0, abs=1e-6)
    assert head["ci95"] == pytest.approx([20.0, 20.0], abs=1e-6)  # the same shift on every query
    verdicts = {(o["better"][:1], o["worse"][:1]): o["verdict"] for o in side["orders"]}
    assert verdicts[("B", "A")] == "tie" and verdicts[("D", "B")] == "reversed" and verdicts[("F", "D")] == "holds"
    assert verdicts[("C", "B")] == "not run"
    assert next(o for o in side["orders"] if o["better"].startswith("B"))["valid_queries"] == 59
    f_row = next(r for r in side["rows"] if r["name"].startswith("F:"))
    lo, hi = f_row["ci95"]["mAP"]
    assert lo < f_row["ours"]["mAP"] < hi and f_row["paper"] == {"mAP": 71.2, "R1": 82.6}
    assert "**Headline** (F: +F +A +T, sigma 0.5 (final model) vs A: baseline (avg pooling, softmax)): **holds**" in md
    assert "| D: +F +A (average fusion) > B: +A | 2.1 | -20.0 |" in md
    assert "`reid tune ablation adfta-table4 --full --seeds 3`" in md
    assert side["untrained"]["mAP"] == 10.0   # the floor a row must clear, and each row's multiple of it
    floor_line = next(line for line in md.splitlines() if "untrained reference" in line)
    assert "test mAP 10.0 (R1 8.0)" in floor_line
    assert f"F: +F +A +T, sigma 0.5 (final model): {rows['F: +F +A +T, sigma 0.5 (final model)']['mAP'] / 10:.1f}x" \
        in floor_line


def test_a_resumed_experiment_must_be_the_grid_this_command_asks_for():
    """Tune resumes an ablation with the rows x seeds it started with; another --seeds recorded seeds that never ran,
    and another --rows could label one row's results with another's name. Rows are keyed by their place in the
    table, whichever are chosen, so the trials' configs say which rows ran."""
    from types import SimpleNamespace

    from reid.errors import ReidError
    from tune.ablation import check_grid

    spec = load_spec("astpn-table2")
    grid = {"00": {"name": spec.rows[0].name}, "01": {"name": spec.rows[1].name}}
    ran = [SimpleNamespace(config={"row": k, "seed": s}) for k in ("00", "01") for s in (0, 1, 2)]
    check_grid(spec, ran, grid, [0, 1, 2], "/x/astpn-table2-synthetic-smoke")
    with pytest.raises(ReidError, match=(r"the experiment at /x/astpn-table2-synthetic-smoke holds rows ASTPN, "
                                         r"RNN-CNN \[20\] x seeds 0, 1, 2; this command asks for rows ASTPN, "
                                         r"RNN-CNN \[20\] x seeds 0, 1, 2, 3, 4\. --resume continues")):
        check_grid(spec, ran, grid, [0, 1, 2, 3, 4], "/x/astpn-table2-synthetic-smoke")
    with pytest.raises(ReidError, match=r"asks for rows RNN-CNN \[20\] x seeds 0, 1, 2"):
        check_grid(spec, ran, {"01": grid["01"]}, [0, 1, 2], "/x")  # --rows 1 of a 2-row experiment
