import argparse
import re

import pytest

from reid.bench import data as bench_data
from reid.bench.toydata import write_toy_dataset
from reid.errors import ReidError


def parse(argv):
    p = argparse.ArgumentParser()
    bench_data.add_arguments(p)
    return p.parse_args(argv)


def test_table_ratios():
    table = bench_data.format_table("t", pipeline=120.0, baseline=40.0, raw=100.0, workers=2)
    assert "pipeline / baseline per core: 3.00" in table
    assert "pipeline / raw decode limit per core: 0.60" in table
    assert re.search(r"baseline \(DataLoader, PIL per frame\)\s+40\.0\s+20\.0\s+1\.00x", table)


def test_bad_arguments():
    with pytest.raises(ReidError, match="--size must look like"):
        bench_data.run(parse(["--size", "32by16"]))
    with pytest.raises(ReidError, match="--batches >= 2"):
        bench_data.run(parse(["--batches", "1"]))


@pytest.mark.ray
@pytest.mark.timeout(300)  # ~20 s on an idle 2-core machine
def test_bench_runs_on_a_tiny_dataset(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    manifest = write_toy_dataset(tmp_path / "toy", ids=4, cams=2, num_frames=8)
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False)
    try:
        code = bench_data.run(parse(["--manifest", str(manifest), "--seq-len", "2", "--size", "32x16",
                                     "--batches", "2", "--repeats", "1", "--workers", "1",
                                     "--ids-per-batch", "2", "--tracklets-per-id", "2"]))
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert code == 0
    assert "T=2, 32x16, P x K = 2 x 2, 2 batches x 1 repeats" in out
    rates = {}
    for name in ("pipeline", "baseline", "raw decode limit"):
        m = re.search(rf"^{re.escape(name)} \(.*?\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", out, re.M)
        assert m, out
        rates[name] = float(m.group(1))
        assert rates[name] > 0
    assert re.search(r"pipeline / baseline per core: [\d.]+ \(target >= 1.5\)", out)
    assert re.search(r"pipeline / raw decode limit per core: [\d.]+ \(target >= 0.5\)", out)
