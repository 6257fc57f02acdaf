"""Fault injection: parsing, firing once per run (the marker), and the stall kind."""

import time

import pytest

from reid.errors import ReidError
from reid.training import faults
from reid.training.faults import Fault, FaultInjector


def test_parse_and_reject():
    assert Fault.parse("stall@2:3/1") == Fault("stall", 2, 3, 1)
    assert Fault.parse("kill@4") == Fault("kill", 4, 1, 0)
    with pytest.raises(ReidError, match="raise\\|kill\\|nan\\|stall"):
        Fault.parse("hang@2")


def test_stall_sleeps_once_per_run(tmp_path, monkeypatch):
    monkeypatch.setattr(faults, "STALL_S", 0.3)
    injector = FaultInjector("stall@2:1", tmp_path, rank=0)
    batch = {"frames": 1.0}
    t0 = time.monotonic()
    injector.before_step(1, 1, batch)  # not due
    injector.before_step(2, 2, batch)
    assert time.monotonic() - t0 < 0.2
    injector.before_step(2, 1, batch)
    assert time.monotonic() - t0 >= 0.3 and batch == {"frames": 1.0}
    resumed = FaultInjector("stall@2:1", tmp_path, rank=0)  # a resumed run finds the marker and goes on
    t1 = time.monotonic()
    resumed.before_step(2, 1, batch)
    assert time.monotonic() - t1 < 0.2


def test_several_faults_fire_each_at_its_own_step_once(tmp_path, monkeypatch):
    monkeypatch.setattr(faults, "STALL_S", 0.3)
    spec = "stall@2:1/0, raise@3:2/0,nan@3:1/1"
    rank0, rank1 = FaultInjector(spec, tmp_path, rank=0), FaultInjector(spec, tmp_path, rank=1)
    batch = {"frames": 1.0}
    t0 = time.monotonic()
    rank0.before_step(2, 1, batch)
    assert time.monotonic() - t0 >= 0.3 and batch == {"frames": 1.0}
    rank0.before_step(3, 1, batch)  # rank 1's step: nothing here
    assert batch == {"frames": 1.0}
    with pytest.raises(RuntimeError, match="raise at epoch 3 step 2 on rank 0"):
        rank0.before_step(3, 2, batch)
    rank1.before_step(3, 1, batch)
    assert batch["frames"] != batch["frames"]  # NaN
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fault-nan@3:1_1", ".fault-raise@3:2_0",
                                                          ".fault-stall@2:1_0"]
    again = FaultInjector(spec, tmp_path, rank=0)  # the restarted run: every fault fired already
    t1 = time.monotonic()
    again.before_step(2, 1, batch)
    again.before_step(3, 2, batch)
    assert time.monotonic() - t1 < 0.2
    with pytest.raises(ReidError, match="hang@1"):
        FaultInjector("kill@2,hang@1", tmp_path, rank=0)
