"""`--backend auto` of `reid eval` and `reid index` (the default; reid/evaluation/run/backend.py): Ray Data where a
cluster is configured or the tracklets are many, this process where Ray's start-up would cost more than the
extraction, or where only this process can do it."""

from __future__ import annotations

import pytest

from reid.config import build_config
from reid.evaluation.run.backend import AUTO_LOCAL_MAX, backend_line, choose_backend


def _cfg(*overrides: str):
    return build_config("baseline", ["baseline-synthetic"], list(overrides))


@pytest.mark.timeout(60)
def test_auto_picks_this_process_for_a_small_split_without_a_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    backend, why = choose_backend("auto", _cfg(), 25)
    assert backend == "local" and why.startswith("25 tracklets and no Ray cluster configured")
    assert choose_backend("auto", _cfg(), AUTO_LOCAL_MAX)[0] == "local"
    assert choose_backend("auto", _cfg(), AUTO_LOCAL_MAX + 1) == ("ray", f"{AUTO_LOCAL_MAX + 1} tracklets, more "
                                                                         f"than {AUTO_LOCAL_MAX}")


@pytest.mark.timeout(60)
def test_auto_picks_ray_data_on_a_configured_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert choose_backend("auto", _cfg("ray.address=10.0.0.1:6379"), 25)[0] == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # what a `ray job submit` driver sees
    assert choose_backend("auto", _cfg(), 25) == ("ray", "a Ray cluster is configured")


@pytest.mark.timeout(60)
def test_auto_keeps_what_only_this_process_does_here_and_an_explicit_choice_stands(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert choose_backend("auto", _cfg(), 5000, local_only="eval.tta runs here") == ("local", "eval.tta runs here")
    assert choose_backend("ray", _cfg(), 3) == ("ray", "--backend ray")
    assert choose_backend("local", _cfg(), 50_000) == ("local", "--backend local")


def test_the_line_says_what_auto_chose():
    assert backend_line("local", "25 tracklets") == "[reid] features in this process (25 tracklets)"
    assert backend_line("ray", "a Ray cluster is configured") == ("[reid] features with Ray Data (a Ray cluster is "
                                                                   "configured)")
