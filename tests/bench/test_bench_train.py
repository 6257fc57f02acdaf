import argparse
import re

import pytest

from reid.bench import train as bench_train
from reid.cli import main


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_train_prints_throughput_and_breakdown(tmp_path, capsys):
    from reid.data.synth import ensure_dataset

    data = tmp_path / "tiny"
    ensure_dataset(data, "tiny")
    rc = main(["bench", "train", "--method", "baseline", "--workers", "0", "--epochs", "2", "--batches", "2",
               "--data", str(data), "model.pretrained=false", "data.height=64", "data.width=32",
               "data.seq_len=2", "data.test_sampler=restricted"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "clips/s" in out and "data wait" in out and "forward" in out and "backward" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("0 "))
    assert float(row.split()[1]) > 0  # clips/s measured
    share = re.search(r"^data wait share: ([\d.]+)% \(0 worker\(s\); target <= 5%\)$", out, re.M)
    assert share and 0 <= float(share.group(1)) < 100


def test_bench_train_refuses_an_unknown_method_and_bad_worker_counts_in_one_line():
    from reid.errors import ReidError

    parser = argparse.ArgumentParser()
    bench_train.add_arguments(parser)
    with pytest.raises(ReidError, match=r"unknown method 'nosuch'; known methods: .*baseline"):
        bench_train.run(parser.parse_args(["--method", "nosuch"]))
    for bad in ("x", "1,x", "-1", ","):
        with pytest.raises(ReidError, match=r"--workers takes comma-separated worker counts >= 0"):
            bench_train.worker_counts(bad)
    assert bench_train.worker_counts("0,1, 2") == [0, 1, 2]
