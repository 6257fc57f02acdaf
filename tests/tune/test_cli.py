"""`reid tune` argument handling (no Ray, no training)."""

from __future__ import annotations

import json

import pytest

from reid.cli import build_parser, main
from reid.commands import tune as tune_cmd


def parse(argv):
    return build_parser(argv).parse_args(argv)


@pytest.mark.timeout(60)
def test_overrides_before_and_after_options():
    a = parse(["tune", "ablation", "adfta-table4", "model.sigma=0.4", "--full", "--epochs", "3", "ray.num_workers=0"])
    assert (a.table, a.size, a.epochs, a.dataset) == ("adfta-table4", "full", 3, "synthetic")
    assert a.overrides == ["model.sigma=0.4", "ray.num_workers=0"]
    s = parse(["tune", "search", "adfta", "--space", "adfta", "--trials", "4", "--config", "adfta-synthetic",
               "train.epochs=2", "--resume"])
    assert (s.method, s.space, s.trials, s.config, s.resume, s.overrides) == (
        "adfta", "adfta", 4, ["adfta-synthetic"], True, ["train.epochs=2"])
    assert parse(["tune", "ablation", "astpn-fig5"]).size == "smoke"


@pytest.mark.timeout(60)
def test_small_machine_default_respects_explicit_choices(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(tune_cmd.os, "cpu_count", lambda: 2)
    assert tune_cmd.small_machine_overrides([], ["a.b=1"]) == ["ray.num_workers=0", "a.b=1"]
    assert tune_cmd.small_machine_overrides([], ["ray.num_workers=2"]) == ["ray.num_workers=2"]
    f = tmp_path / "c.yaml"
    f.write_text("ray: {num_workers: 3}\n")
    assert tune_cmd.small_machine_overrides([str(f)], []) == []
    monkeypatch.setattr(tune_cmd.os, "cpu_count", lambda: 64)
    assert tune_cmd.small_machine_overrides([], []) == []


@pytest.mark.timeout(120)
def test_user_errors_exit_2_with_a_message(tmp_path, capsys, monkeypatch):
    """One line, the error alone: not after the small machine's note on how trials will run (they never start)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(tune_cmd.os, "cpu_count", lambda: 2)
    for argv, message in ((["tune", "ablation", "no-such-table"], "unknown ablation table 'no-such-table'"),
                          (["tune", "search", "adfta", "--space", "nope", "--trials", "2"],
                           "unknown search space 'nope'"),
                          (["tune", "search", "nope", "--space", "adfta", "--trials", "2"], "unknown method 'nope'"),
                          (["tune", "search", "adfta", "--space", "adfta", "--trials", "2", "no.key=1"],
                           "unknown key 'no'"),
                          (["tune", "ablation", "astpn-fig5", "--rows", "7"], "--rows")):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert message in err and out == "", (argv, out, err)


@pytest.mark.timeout(120)
def test_from_results_renders_and_copies_the_table(tmp_path, capsys):
    rec = {"table": "astpn-fig5", "meta": {"our dataset": "synthetic (recorded)"},
           "rows": {"RNN-CNN (mean pooling)": {"R1": 30.0, "R5": 50.0, "R10": 60.0, "R20": 70.0},
                    "ASTPN (both)": {"R1": 35.0, "R5": 55.0, "R10": 65.0, "R20": 75.0}}}
    (tmp_path / "results.json").write_text(json.dumps(rec))
    dest = tmp_path / "results" / "astpn.md"
    assert main(["tune", "ablation", "astpn-fig5", "--from-results", str(tmp_path / "results.json"),
                 "--results-md", str(dest)]) == 0
    md = dest.read_text()
    assert "| RNN-CNN (mean pooling) | RNN-CNN | 58.0 | 30.0 | 84.0 | 50.0 |" in md
    assert "Ordering on R1: 1/1 row pairs" in md


@pytest.mark.parametrize("resume,again", [(False, "the same command with --resume continues it"),
                                          (True, "the same command continues it")])
def test_a_stopped_sweep_says_how_to_go_on(resume, again, tmp_path, capsys, monkeypatch):
    import tune.search

    def stopped(cfg, space, opts):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune.search, "run_search", stopped)
    argv = ["tune", "search", "baseline", "--space", "baseline", "--trials", "2", "--out", str(tmp_path)]
    assert main(argv + (["--resume"] if resume else [])) == 130
    err = capsys.readouterr().err
    assert f"[reid] the experiment keeps its finished trials: {again}" in err
    assert err.rstrip().endswith("reid tune: interrupted")


@pytest.mark.parametrize("argv,noted", [(["--resume", "--max-concurrent", "1"], True),
                                        (["--max-concurrent", "1"], False), (["--resume"], False)])
def test_resume_says_max_concurrent_is_not_applied(argv, noted, tmp_path, capsys, monkeypatch):
    """Tune restores a resumed experiment's concurrency limit with its searcher: the new number would be ignored
    without a word."""
    import tune.search

    def stopped(cfg, space, opts):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune.search, "run_search", stopped)
    main(["tune", "search", "baseline", "--space", "baseline", "--trials", "2", "--out", str(tmp_path), *argv])
    out = capsys.readouterr().out
    assert ("--max-concurrent sets a new experiment's trials at once; a resumed one keeps the number it started "
            "with" in out) == noted, out
