import argparse
import json
import re

import pytest

from reid.bench import data as bench_data
from reid.bench.toydata import write_toy_dataset
from reid.errors import ReidError


def parse(argv):
    p = argparse.ArgumentParser()
    bench_data.add_arguments(p)
    return p.parse_args(argv)


def test_report_ratios():
    stores = {"video": {"bytes_per_frame": 900, "raw": 100.0, "startup_s": 2.0, "fit": 180.0, "steady": 190.0,
                        "fit_1": 95.0, "actor_starts": 2},
              "jpeg": {"bytes_per_frame": 4000, "raw": 200.0, "startup_s": 2.0, "fit": 360.0, "steady": 370.0,
                       "fit_1": 190.0, "actor_starts": 2, "raw_parallel": 390.0}}
    report = bench_data.format_report("t", stores, baseline=60.0, workers=2, default="jpeg")
    assert "fit-level pipeline / raw decode per core: 0.90 (target >= 0.9)" in report
    assert "  the same with 1 decoding actor: 0.95 (its pipeline overhead" in report
    assert "the same with 1" not in bench_data.format_report("t", stores, baseline=60.0, workers=1, default="jpeg")
    assert "fit-level pipeline / torchreid-style loader per core: 6.00 (target >= 3)" in report
    assert "1 -> 2 decoding actors: 1.89x (target >= 1.8)" in report
    assert "  raw decode, 2 processes at once / 1 process: 1.95x (this machine's own ceiling for 1 -> 2" in report
    assert "processes at once" not in bench_data.format_report("t", stores, baseline=60.0, workers=2,
                                                               default="video")  # not measured: no line
    assert re.search(r"^video\s+900\s+100\.0\s+2\.0s\s+180\.0\s+90\.0\s+190\.0\s+0\.90\s+95\.0\s+1\.89$", report,
                     re.M)


def _raw_case(tmp_path):
    from reid.config.schema import ExperimentConfig
    from reid.data.plan import pk_plan
    from reid.data.records import read_manifest

    manifest = write_toy_dataset(tmp_path / "toy", ids=4, cams=2, num_frames=8)
    cfg = ExperimentConfig(data={"height": 32, "width": 16, "seq_len": 2, "train_sampler": "restricted"})
    rows = pk_plan(read_manifest(manifest).records, seed=0, epoch=0, ids_per_batch=2, tracklets_per_id=2,
                   batches_per_epoch=3)
    return manifest, cfg, rows


@pytest.mark.timeout(120)
def test_parallel_raw_decoders_each_decode_every_clip_and_start_together(tmp_path):
    manifest, cfg, rows = _raw_case(tmp_path)
    spans = bench_data.raw_spans(manifest, rows, cfg, processes=2)
    assert [s.clips for s in spans] == [12, 12]  # 3 batches of 2 x 2 clips, in each process
    assert max(s.start for s in spans) < min(s.end for s in spans)  # the barrier: both decoding at once
    assert all(0 < s.cpu_s < 2 * (s.end - s.start) + 0.05 for s in spans)  # its own CPU time, not the machine's


@pytest.mark.timeout(120)
def test_a_failing_parallel_raw_decoder_is_one_clear_error(tmp_path):
    _, cfg, rows = _raw_case(tmp_path)
    with pytest.raises(ReidError, match=r"^the raw decode failed: \w+Error: .*missing"):
        bench_data.raw_spans(tmp_path / "missing" / "manifest.parquet", rows, cfg, processes=2)


def test_epoch_rates_count_every_batch_when_batches_arrive_in_bursts():
    # a pipeline that makes 1 batch a second but hands them over 3 at a time, at t = 3, 6, 9: 1 batch/s each epoch
    bursts = [[3.0, 3.0, 3.0], [6.0, 6.0, 6.0], [9.0, 9.0, 9.0]]
    assert bench_data.epoch_rates(bursts, clips_per_batch=16) == [16.0, 16.0]
    # a smooth stream, 2 batches a second: the same from either end
    smooth = [[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]]
    assert bench_data.epoch_rates(smooth, clips_per_batch=1) == [2.0]
    assert bench_data.epoch_rates([[0.5, 1.0, 1.5]], clips_per_batch=1) == [2.0]  # one epoch: first to last


def test_bad_arguments():
    with pytest.raises(ReidError, match="--size must look like"):
        bench_data.run(parse(["--size", "32by16"]))
    with pytest.raises(ReidError, match="--batches >= 2"):
        bench_data.run(parse(["--batches", "1"]))
    with pytest.raises(ReidError, match="--stores takes video, jpeg"):
        bench_data.run(parse(["--stores", "h265"]))


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_bench_runs_on_a_tiny_dataset(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    from reid.ray_runtime import start_local_ray
    manifest = write_toy_dataset(tmp_path / "toy", ids=4, cams=2, num_frames=8)
    start_local_ray(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    try:
        code = bench_data.run(parse(["--manifest", str(manifest), "--seq-len", "2", "--size", "32x16",
                                     "--batches", "2", "--epochs", "2", "--repeats", "1", "--workers", "2",
                                     "--ids-per-batch", "2", "--tracklets-per-id", "2",
                                     "--json", str(tmp_path / "out.json"), "--plot", str(tmp_path / "fit.png")]))
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert code == 0
    assert "T=2, 32x16, P x K = 2 x 2, 2 epochs x 2 batches per fit, 1 repeats (medians), 2 decoding actors" in out
    for store in ("video", "jpeg"):
        assert re.search(rf"^{store}\s+\d+\s+[\d.]+\s+[\d.]+s(\s+[\d.]+){{6}}$", out, re.M), out
    assert re.search(r"fit-level pipeline / raw decode per core: [\d.]+ \(target >= 0.9\)", out)
    assert re.search(r"fit-level pipeline / torchreid-style loader per core: [\d.]+ \(target >= 3\)", out)
    assert "decoding-actor starts per fit: 2)" in out  # the pool, once per fit (2 epochs)
    assert "give --batches >= 8" in out  # 2 batches for 2 actors: flagged
    # 4 batches: an actor may be done before the first batch arrives, and then that store's split is not measured
    if "CPU split: not measured" not in out:
        for store in ("video", "jpeg"):
            assert re.search(rf"^{store}(\s+[\d.]+){{5}}\s+\d+%$", out, re.M) or \
                re.search(rf"^{store}\s+not measured: some fit's window did not see exactly the pool's actors",
                          out, re.M), out
    saved = json.loads((tmp_path / "out.json").read_text())
    host = saved["conditions"]  # what the numbers ran on
    assert host["cpus"] >= 1 and host["cpu_model"] and host["date"][:2] == "20" and host["ray"] and "commit" in host
    assert f"host: {host['cpus']} CPUs ({host['cpu_model']}), code at " in out
    assert set(saved["stores"]) == {"video", "jpeg"} and saved["stores"]["jpeg"]["fit"] > 0
    assert saved["stores"]["jpeg"]["raw_cpu"] > 0
    for store in ("video", "jpeg"):  # the median fits' batch arrivals: 2 epochs x 2 batches, after the start-up
        for fit in ("actors_2", "actors_1"):
            arrivals = saved["arrivals_s"][store][fit]
            assert [len(e) for e in arrivals] == [2, 2], arrivals
            assert all(0 < t for e in arrivals for t in e) and arrivals[1][0] >= arrivals[0][0]
    assert f"plot: {tmp_path / 'fit.png'}" in out and (tmp_path / "fit.png").read_bytes()[:4] == b"\x89PNG"


def test_an_epoch_too_short_for_the_actors_is_flagged():
    assert bench_data.burst_warning(8, 2) is None
    warning = bench_data.burst_warning(8, 14)
    assert "8 batches per epoch for 14 decoding actors" in warning and "--batches >= 56" in warning
