"""`reid bench eval`: the problem generator, the measuring worker, and the missing-checkout message."""

import argparse

import numpy as np
import pytest

import reid.bench.eval as bench
from reid.errors import ReidError


def test_problem_is_mars_shaped():
    p = bench.make_problem(50, 400, 16, seed=0)
    assert p["q_feats"].shape == (50, 16) and p["g_feats"].shape == (400, 16)
    assert (p["q_pids"] > 0).all() and (p["g_pids"] == 0).any()
    assert set(np.unique(p["g_cams"])) <= set(range(1, 7))
    np.testing.assert_allclose(np.linalg.norm(p["g_feats"], axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("task", ["metrics", "metrics_naive", "rerank", "rerank_dense"])
def test_worker_measures_each_task(tmp_path, task):
    bench._save(tmp_path, bench.make_problem(8, 60, 8, seed=1), with_dist=task.startswith("metrics"))
    out = bench._worker(task, str(tmp_path), repeats=2, threads=1, device="cpu")
    assert len(out["times"]) == 2 and out["time_s"] > 0 and out["peak_mb"] > 0
    assert (tmp_path / f"out_{task}.npy").is_file()


def test_missing_checkout_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "NAIVE_PATH", tmp_path / "nope.py")
    monkeypatch.delitem(__import__("sys").modules, "reid_tests_evaluation_naive", raising=False)
    with pytest.raises(ReidError, match="--skip-naive"):
        bench.load_naive()


def test_run_prints_the_table(capsys, monkeypatch):
    # in-process workers keep this fast; test_measure_in_a_subprocess covers the subprocess path
    monkeypatch.setattr(bench, "_measure", lambda task, d, r, t, dev: bench._worker(task, str(d), r, t, dev))
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--queries", "10", "--gallery", "80", "--dim", "8", "--repeats", "1"])
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "CMC+mAP+mINP, 1 thread" in out and "target CMC+mAP < 2 s on one core: met" in out
    assert "per-query AP, ours vs naive: max |diff|" in out and "re-ranking, ours vs dense on 10x80" in out


@pytest.mark.slow
def test_measure_in_a_subprocess(tmp_path):
    bench._save(tmp_path, bench.make_problem(8, 60, 8, seed=2), with_dist=True)
    out = bench._measure("metrics", tmp_path, 1, 1, "cpu")
    assert out["threads"] == 1 and out["peak_mb"] >= out["base_mb"] > 0
