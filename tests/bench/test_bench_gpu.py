"""`reid bench gpu`: runs on CPU up to the CUDA check; its measuring functions are exercised on CPU here."""

import argparse

import pytest
import torch

from reid.bench import gpu
from reid.data.synth import generate
from reid.errors import ReidError


def parse(argv):
    p = argparse.ArgumentParser()
    gpu.add_arguments(p)
    return p.parse_args(argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_without_cuda_it_stops_with_a_clear_error(tmp_path):
    with pytest.raises(ReidError, match="needs a CUDA device and none is visible"):
        gpu.run(parse(["--out", str(tmp_path)]))
    assert not list(tmp_path.iterdir())


def test_actor_counts_double_up_to_the_cpus_left():
    assert gpu._actor_counts("3,5") == [3, 5]
    counts = gpu._actor_counts(None)
    assert counts[0] == 1 and counts == sorted(counts) and len(set(counts)) == len(counts)


@pytest.mark.timeout(600)
def test_step_time_measures_a_finite_step_for_a_method(tmp_path):
    manifest = generate(tmp_path / "syn", preset="tiny", seed=0)
    res = gpu.step_time("baseline", ["baseline-synthetic"], ["data.ids_per_batch=2", "data.tracklets_per_id=2",
                                                             "model.pretrained=false"],
                        manifest, torch.device("cpu"), steps=1, warmup=1)
    assert res["finite"] and res["step_s"] > 0 and res["batch"] == 4 and res["clips_per_s"] > 0


def test_sections_record_failures_and_budget():
    s = gpu.Sections(budget_s=100)
    assert s.run("ok", lambda: {"x": 1}) == {"x": 1}
    assert s.run("bad", lambda: 1 / 0) is None and s.failed
    assert "ZeroDivisionError" in s.results["bad"]["error"]
    assert s.run("late", lambda: 1, need_s=1000) is None and "time budget" in s.results["late"]["skipped"]


def test_markdown_summary_lists_every_part():
    summary = {"date": "2026-12-02", "gpu": "NVIDIA H200", "gpus": 1, "cpus": 16, "torch": "2.x",
               "headline": " ".join(gpu.HEADLINE),
               "gpu_only": {"step_s": 0.1, "clips_per_s": 640.0, "batch": 64, "peak_mem_gib": 20.0},
               "fed": {"jpeg": [{"actors": 4, "busy": 0.93, "clips_per_s": 600.0}]},
               "decode_cpus_for_90pct": {"jpeg": 4},
               "methods": {"baseline": {"step_s": 0.1, "clips_per_s": 640.0, "peak_mem_gib": 20.0, "finite": True},
                           "astpn": None},
               "method_astpn": {"error": "RuntimeError: boom"}, "ddp": {"skipped": "one GPU visible"},
               "nvjpeg": {"frames_per_s": 5000.0}, "gpu_tests": {"returncode": 0, "summary": "3 passed"},
               "pose": [{"min_size": 800, "s_per_frame": 0.0213}, {"min_size": 256, "s_per_frame": 0.0052}]}
    md = gpu.format_markdown(summary)
    assert "| jpeg | 4 | 0.93 | 600 |" in md and "jpeg: 4" in md
    assert "| baseline | 100.0 | 640 | 20.00 | True |" in md and "| astpn | RuntimeError: boom" in md
    assert "Failed sections:" in md and "3 passed" in md
    assert "--min-size 800: 21.3 ms/frame, --min-size 256: 5.2 ms/frame" in md
    summary["pose"] = {"skipped": "time budget"}
    assert 'pose: `{"skipped": "time budget"}`' in gpu.format_markdown(summary)


@pytest.mark.timeout(300)
def test_pose_rate_times_reid_poses_estimator_at_each_size():
    rows = gpu.pose_rate(torch.device("cpu"), frames=2, sizes=(64, 32))
    assert [r["min_size"] for r in rows] == [64, 32] and all(r["s_per_frame"] > 0 for r in rows)
    assert rows[0]["input"] == (128, 64) and all(r["device"] == "cpu" for r in rows)  # shorter side 128 -> 64


def test_every_gpu_test_lives_where_bench_gpu_runs_them():
    """`reid bench gpu` runs `pytest -m gpu tests/gpu`: a test marked gpu elsewhere would never run on a GPU."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    marked = {p.relative_to(root).as_posix() for p in root.rglob("*.py")
              if "mark.gpu" in p.read_text(encoding="utf-8") and p.name != Path(__file__).name}
    assert marked and all(m.startswith(gpu.GPU_TESTS.removeprefix("tests/") + "/") for m in marked), marked


def test_gpu_tests_outside_a_checkout_are_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = gpu.gpu_tests(timeout_s=30)
    assert "returncode" not in res and "tests/gpu" in res["skipped"]


def test_the_jpeg_store_decoded_on_the_gpu_is_a_store_of_its_own(tmp_path):
    from reid.config import build_config

    assert parse([]).stores.split(",") == list(gpu.STORES) and "jpeg-trainer" in gpu.STORES
    cfg = build_config("baseline", ["baseline"], gpu.HEADLINE + gpu.STORE_OVERRIDES["jpeg-trainer"])
    assert cfg.data.jpeg_decode == "trainer"
    md = gpu.format_markdown({"date": "2026-12-05", "gpu": "g", "gpus": 1, "cpus": 16, "torch": "2.x", "headline": "",
                              "fed": {"jpeg-trainer": [{"actors": 2, "busy": 0.75, "clips_per_s": 500.0,
                                                        "input_ms": 21.5, "gpu_busy": 0.91}]},
                              "decode_cpus_for_90pct": {"jpeg-trainer": 2}})
    assert "| jpeg-trainer | 2 | 0.75 | 500 | 21.5 | 0.91 |" in md and "jpeg-trainer: 2" in md
    md = gpu.format_markdown({"date": "2026-12-05", "gpu": "g", "gpus": 1, "cpus": 16, "torch": "2.x", "headline": "",
                              "host": {"cpu_model": "Some CPU", "commit": "abc1234", "ray": "2.60.0",
                                       "date": "2026-12-05T10:00:00+00:00"}})
    assert "Host: Some CPU, code at abc1234, Ray 2.60.0, 2026-12-05T10:00:00+00:00." in md
    assert gpu.busy({"busy": 0.75, "gpu_busy": 0.91}) == 0.91 and gpu.busy({"busy": 0.8}) == 0.8


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_an_unknown_store_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "fake")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ReidError, match="unknown \\['jpg'\\]"):
        gpu.run(parse(["--out", str(tmp_path), "--stores", "jpeg,jpg"]))
