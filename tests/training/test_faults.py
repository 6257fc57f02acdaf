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
