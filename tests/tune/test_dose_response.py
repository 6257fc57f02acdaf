"""`reid tune dose-response`: sidecars of one ablation at several suite strengths -> data file + plot (no training),
and the sidecar field it reads (`data.strength`, written by the ablation)."""

from __future__ import annotations

import json

import pytest

from reid.cli import main
from reid.config import build_config
from tune.ablation import data_record, load_spec, render
from tune.dose_response import collect, epochs_of, title

ROWS = ["full: FCN attention (sigmoid) averaged with mean pooling, YUV + flow", "mean pooling only (no attention)"]
SIZE = "full, reduced to 4 epoch(s): 4 epoch(s), 56x28, T=8, recipe reid/configs/fcnta-synthetic.yaml + fcnta-synth-cpu"


def fake_sidecar(strength, delta, ci, **changes):
    """A sidecar shaped as tune/evidence.py `sidecar` writes it (only the fields a dose-response reads, plus a row)."""
    doc = {"paper": "fcnta components", "table": "fcnta-components", "suite": f"synthetic (quality {strength})",
           "data": {"source": "synthetic", "preset": "quality", "strength": strength}, "size": SIZE, "seeds": 3,
           "valid_queries": 568, "headline": {"rows": ROWS, "verdict": "holds" if ci[0] > 0 else "tie",
                                              "delta_map": delta, "ci95": list(ci)},
           "rows": [{"name": ROWS[0]}], "hardware": "2 CPU cores (x86_64, Linux), no GPU", "date": "13.6 min, d"}
    doc.update(changes)
    return doc


def write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


@pytest.mark.timeout(60)
def test_data_record_is_the_suite_and_its_strength():
    cfg = build_config("fcnta", ["fcnta-synth-cpu"], ["data.synth_preset=quality", "data.synth_strength=0.2"])
    assert data_record(cfg, "synthetic") == {"source": "synthetic", "preset": "quality", "strength": 0.2}
    control = build_config("fcnta", [], ["data.synth_preset=quality", "data.synth_strength=0"])
    assert data_record(control, "synthetic")["strength"] == 0.0
    demo = build_config("fcnta", [], ["data.synth_preset=demo"])
    assert data_record(demo, "synthetic") == {"source": "synthetic", "preset": "demo", "strength": None}
    assert data_record(demo, "paper") == {"source": "paper", "dataset": demo.data.dataset}


@pytest.mark.timeout(60)
def test_rendered_sidecars_carry_the_strength_into_the_dose_response(tmp_path):
    """The real writer (render -> table.json) at two strengths with known paired gaps: the attention row's AP is the
    mean-pooling row's + 0.1 at strength 0 and + 0.3 at 0.5 on every query, so the gaps are 10 and 30 points with
    zero-width intervals, read back in strength order."""
    import numpy as np

    spec = load_spec("fcnta-components")
    assert list(spec.headline) == ROWS
    rng = np.random.default_rng(0)
    paths = []
    for strength, shift in ((0.5, 0.3), (0.0, 0.1)):
        base = {s: rng.uniform(0.1, 0.6, size=40) for s in ("0", "1", "2")}
        per_query = {name: {s: {"ap": (base[s] + d).tolist(), "first_match_rank": [1] * 40} for s in base}
                     for name, d in ((ROWS[0], shift), (ROWS[1], 0.0))}
        rows = {name: {"mAP": 30.0, "R1": 30.0, "queries": 40, "status": "TERMINATED", "split": "test",
                       "seeds": {s: {"mAP": 30.0} for s in base}} for name in ROWS}
        data = {"source": "synthetic", "preset": "quality", "strength": strength}
        recorded = {"table": spec.table, "meta": {"our dataset": "synthetic (constructed)", "size": SIZE,
                                                  "hardware": "test machine", "wall time": "13.6 min, 2026-12-04"},
                    "rows": rows, "per_query": per_query, "query_ids": [f"q{i}" for i in range(40)], "data": data}
        render(spec, recorded, tmp_path / f"s{strength}" / "table")
        side = json.loads((tmp_path / f"s{strength}" / "table.json").read_text())
        assert side["data"] == data
        assert side["date"] == "2026-12-04" and side["wall_time"] == "13.6 min, 2026-12-04"
        assert side["rows"][0]["ours"]["mAP"] == 30.0  # mAP per row and per seed, though the paper reports only CMC
        assert {s: e["mAP"] for s, e in side["rows"][0]["per_seed"].items()} == {"0": 30.0, "1": 30.0, "2": 30.0}
        paths.append(str(tmp_path / f"s{strength}" / "table.json"))
    points, shared = collect(paths)
    assert [p.strength for p in points] == [0.0, 0.5]
    assert [p.delta_map for p in points] == pytest.approx([10.0, 30.0], abs=1e-6)
    assert [c for p in points for c in p.ci95] == pytest.approx([10.0, 10.0, 30.0, 30.0], abs=1e-6)
    assert shared["rows"] == ROWS and shared["seeds"] == 3 and shared["hardware"] == ["test machine"]


@pytest.mark.timeout(60)
def test_data_file_equals_the_sidecars_and_the_plot_is_written(tmp_path, capsys):
    given = {0.5: (3.905, (2.445, 5.281)), 0.0: (-0.25, (-1.5, 1.125)), 0.2: (1.0, (0.125, 2.0))}
    paths = [write(tmp_path, f"s{s}.json", fake_sidecar(s, d, ci)) for s, (d, ci) in given.items()]
    out = tmp_path / "out" / "dose.png"
    assert main(["tune", "dose-response", *paths, "--out", str(out)]) == 0
    assert "dose.png" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    data = json.loads(out.with_suffix(".json").read_text())
    assert [p["strength"] for p in data["points"]] == [0.0, 0.2, 0.5]
    for p in data["points"]:
        delta, ci = given[p["strength"]]
        assert p["delta_map"] == delta and p["ci95"] == list(ci)  # exactly the sidecar's numbers
        assert p["sidecar"] == str(tmp_path / f"s{p['strength']}.json") and p["seeds"] == 3
        assert p["verdict"] == ("holds" if ci[0] > 0 else "tie")
    assert data["rows"] == ROWS and data["table"] == "fcnta-components" and data["preset"] == "quality"
    custom = tmp_path / "elsewhere.json"
    assert main(["tune", "dose-response", *paths, "--out", str(out), "--data", str(custom)]) == 0
    assert json.loads(custom.read_text())["points"] == data["points"]


@pytest.mark.timeout(60)
def test_title_names_table_rows_seeds_epochs_and_hardware():
    shared = {"table": "fcnta-components", "preset": "quality", "rows": ROWS, "seeds": 3, "size": SIZE,
              "hardware": ["2 CPU cores (x86_64, Linux), no GPU"]}
    t = title(shared)
    for part in ("fcnta-components", "'quality'", f"a = {ROWS[0]}", f"b = {ROWS[1]}", "3 seeds", "4 epochs",
                 "2 CPU cores (x86_64, Linux), no GPU"):
        assert part in t, part
    assert epochs_of(SIZE) == "4" and epochs_of("smoke") is None


def _bad(tmp_path):
    good = [fake_sidecar(0.0, 1.0, (0.0, 2.0)), fake_sidecar(0.5, 2.0, (1.0, 3.0))]
    no_head = fake_sidecar(0.2, 1.0, (0.0, 2.0))
    del no_head["headline"]
    no_data = fake_sidecar(0.2, 1.0, (0.0, 2.0))
    del no_data["data"]
    return {
        "not found": ([str(tmp_path / "missing.json")], "not found"),
        "not JSON": (["{truncated"], "is not JSON"),
        "a list": (["[1, 2]"], "not an ablation sidecar"),
        "no headline": ([no_head], "no headline with two rows"),
        "headline not run": ([fake_sidecar(0.2, None, (0.0, 2.0))], "no delta_map and ci95"),
        "bad ci": ([fake_sidecar(0.2, 1.0, (0.0,))], "no delta_map and ci95"),
        "no strength": ([no_data], "no data.strength"),
        "other table": ([fake_sidecar(0.2, 1.0, (0.0, 2.0), table="astpn-fig5")], "differ in table"),
        "other epochs": ([fake_sidecar(0.2, 1.0, (0.0, 2.0), size=SIZE.replace("4 epoch", "10 epoch"))],
                         "differ in size"),
        "other seeds": ([fake_sidecar(0.2, 1.0, (0.0, 2.0), seeds=1)], "differ in seeds"),
        "same strength": ([fake_sidecar(0.5, 1.0, (0.0, 2.0))], "same strength"),
    }, good


@pytest.mark.timeout(60)
def test_missing_or_malformed_sidecars_are_one_line_errors(tmp_path, capsys):
    cases, good = _bad(tmp_path)
    good_paths = [write(tmp_path, f"good{i}.json", d) for i, d in enumerate(good)]
    out = tmp_path / "plot.png"
    for case, (extra, message) in cases.items():
        paths = [e if isinstance(e, str) and e.endswith(".json") else write(tmp_path, f"{case}.json", e)
                 for e in extra]
        assert main(["tune", "dose-response", *good_paths, *paths, "--out", str(out)]) == 2, case
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("reid tune: error: dose-response:"), (case, err)
        assert message in err, (case, err)
    assert not out.exists()  # nothing is written when an input is wrong
    assert main(["tune", "dose-response", good_paths[0], "--out", str(out)]) == 2
    assert "two or more strengths" in capsys.readouterr().err
    for case in ("not found", "no headline"):  # one file, and that one wrong: its own error, not the count's
        extra = cases[case][0][0]
        path = extra if isinstance(extra, str) else write(tmp_path, f"{case}.json", extra)
        assert main(["tune", "dose-response", path, "--out", str(out)]) == 2
        assert cases[case][1] in capsys.readouterr().err, case
    assert main(["tune", "dose-response", *good_paths, "--out", str(tmp_path / "plot.svg")]) == 2
    assert "must be a .png" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_sidecars_in_a_bucket_are_read_there_and_a_uri_out_is_one_line(tmp_path, capsys):
    """`reid tune ablation --results-md s3://...` leaves its sidecars in a bucket; the plot is a local file."""
    from reid import storage
    from tests.ops.storage_server import s3_server

    with s3_server() as s3:
        uris = [storage.write_text(s3.uri("abl", f"s{s}.json"), json.dumps(fake_sidecar(s, d, (d - 1, d + 1))))
                for s, d in ((0.0, 0.0), (0.5, 3.0))]
        out = tmp_path / "dose.png"
        assert main(["tune", "dose-response", *uris, "--out", str(out)]) == 0
        data = json.loads(out.with_suffix(".json").read_text())
        assert [p["sidecar"] for p in data["points"]] == uris and data["points"][1]["delta_map"] == 3.0
        assert main(["tune", "dose-response", *uris, "--out", s3.uri("dose.png")]) == 2
        assert "--out s3://reid-test/dose.png: `reid tune dose-response` works on local files and folders only" in \
            capsys.readouterr().err
        assert main(["tune", "dose-response", uris[0], s3.uri("abl", "missing.json"), "--out", str(out)]) == 2
        assert "sidecar s3://reid-test/abl/missing.json not found" in capsys.readouterr().err
