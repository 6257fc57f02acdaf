"""reid.bench.host: what a benchmark's JSON records about the machine and the code."""

import subprocess

from reid.bench import host


def test_host_conditions_name_the_machine_and_the_code():
    got = host.host_conditions()
    assert got["cpus"] >= 1 and got["cpu_model"] and got["python"].count(".") == 2
    assert got["date"].endswith("+00:00") and got["ray"] and got["torch"]
    here = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert got["commit"] is None or here[:7] in got["commit"]  # None: an installed package, no checkout


def test_cpu_model_reads_the_model_name(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000 @ 1.00GHz\nflags\t: a b\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: real_open(fake if p == "/proc/cpuinfo" else p, *a, **k))
    assert host.cpu_model() == "Test CPU 9000 @ 1.00GHz"
