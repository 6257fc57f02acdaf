"""Fault injection: parsing, firing once per run (the marker), and the stall kind."""

import pytest

from reid.errors import ReidError
from reid.training import faults
from reid.training.faults import Fault, FaultInjector


def test_parse_and_reject():
    assert Fault.parse("stall@2:3/1") == Fault("stall", 2, 3, 1)
    assert Fault.parse("kill@4") == Fault("kill", 4, 1, 0)
    with pytest.raises(ReidError, match="raise\\|kill\\|nan\\|stall"):
        Fault.parse("hang@2")


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The stalls' sleeps, recorded instead of slept (counted, not timed: a loaded machine cannot flake them)."""
    slept: list[float] = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    return slept


def test_stall_sleeps_once_per_run(tmp_path, sleeps):
    injector = FaultInjector("stall@2:1", tmp_path, rank=0)
    batch = {"frames": 1.0}
    injector.before_step(1, 1, batch)  # not due
    injector.before_step(2, 2, batch)
    assert sleeps == []
    injector.before_step(2, 1, batch)
    assert sleeps == [faults.STALL_S] and batch == {"frames": 1.0}
    resumed = FaultInjector("stall@2:1", tmp_path, rank=0)  # a resumed run finds the marker and goes on
    resumed.before_step(2, 1, batch)
    assert sleeps == [faults.STALL_S]


def test_several_faults_fire_each_at_its_own_step_once(tmp_path, sleeps):
    spec = "stall@2:1/0, raise@3:2/0,nan@3:1/1"
    rank0, rank1 = FaultInjector(spec, tmp_path, rank=0), FaultInjector(spec, tmp_path, rank=1)
    batch = {"frames": 1.0}
    rank0.before_step(2, 1, batch)
    assert sleeps == [faults.STALL_S] and batch == {"frames": 1.0}
    rank0.before_step(3, 1, batch)  # rank 1's step: nothing here
    assert batch == {"frames": 1.0}
    with pytest.raises(RuntimeError, match="raise at epoch 3 step 2 on rank 0"):
        rank0.before_step(3, 2, batch)
    rank1.before_step(3, 1, batch)
    assert batch["frames"] != batch["frames"]  # NaN
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fault-nan@3:1_1", ".fault-raise@3:2_0",
                                                          ".fault-stall@2:1_0"]
    again = FaultInjector(spec, tmp_path, rank=0)  # the restarted run: every fault fired already
    again.before_step(2, 1, batch)
    again.before_step(3, 2, batch)
    assert sleeps == [faults.STALL_S]
    with pytest.raises(ReidError, match="hang@1"):
        FaultInjector("kill@2,hang@1", tmp_path, rank=0)
