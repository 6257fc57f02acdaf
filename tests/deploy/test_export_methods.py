"""`reid export` of every method (untrained, 64x32 frames, T=4): the exported graph against the project's own
PyTorch path (`tests.deploy.helpers.reference_embedding`), with the method's extra inputs (fcnta / astpn flow,
posetap pose maps), and a deliberately broken graph (input normalised twice) that must miss the tolerance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reid.deploy.verify import TOL, Runner, compare
from tests.deploy.helpers import METHODS, reference_embedding, untrained_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(deploy_data):
    torch.set_num_threads(1)
    cache = {}

    def get(method: str):
        if method not in cache:
            cache[method] = untrained_run(method, deploy_data)
        return cache[method]

    return get


def _inputs(run, clips: int, t: int) -> tuple[torch.Tensor, ...]:
    from reid.deploy.graph import dummy_inputs

    return dummy_inputs(run.cfg, run.spec, clips=clips, length=t)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("method", METHODS)
def test_export_matches_pytorch(method, fmt, runs, tmp_path):
    from reid.deploy.export import export_run

    run = runs(method)
    path, side_path = export_run(run, fmt, tmp_path / f"m.{fmt}")
    side = json.loads(side_path.read_text())
    assert side["method"] == method and side["feature_dim"] == run.feature_dim
    assert set(side["inputs"]) == {"frames", *(n for n in ("flow", "pose_maps") if n in run.spec.inputs)}
    assert all(c["rel_diff"] < TOL for c in side["check"]["results"])
    runner = Runner(path, fmt)
    t = run.cfg.data.seq_len
    lengths = (t, t + 1) if side["dynamic_T"] else (t,)
    for clips in (1, 3):
        for length in lengths:
            inputs = _inputs(run, clips, length)
            check = compare(runner(*inputs), reference_embedding(run, *inputs), clips, length)
            print(f"{method} {fmt} vs pytorch, C={clips} T={length}: max abs diff {check.max_abs_diff:.2e} "
                  f"(relative {check.rel_diff:.2e})")
            assert check.ok, check
    if not side["dynamic_T"]:
        assert side["T"] == t and f"T={t + 1}" in side["T_fixed_because"]
        if fmt == "onnx":  # the fixed axis is enforced: another T is refused, not silently mis-embedded
            with pytest.raises(Exception, match="(?i)dimension|shape"):
                runner(*_inputs(run, 2, t + 1))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("method", METHODS)
def test_doubly_normalised_graph_misses_the_tolerance(method, runs, tmp_path):
    """The fast-reid issue 177 bug: the tolerance above must reject a graph that normalises its input twice."""
    from reid.deploy.export import export_run

    run = runs(method)
    path, _ = export_run(run, "onnx", tmp_path / "broken.onnx", double_normalize=True)
    inputs = _inputs(run, 2, run.cfg.data.seq_len)
    check = compare(Runner(path, "onnx")(*inputs), reference_embedding(run, *inputs), 2, run.cfg.data.seq_len)
    print(f"{method} double-normalised onnx vs pytorch: max abs diff {check.max_abs_diff:.2e} "
          f"(relative {check.rel_diff:.2e})")
    assert check.rel_diff > 100 * TOL


@pytest.mark.timeout(600)
def test_a_graph_that_disagrees_is_not_written(runs, tmp_path, monkeypatch):
    from reid.deploy import export
    from reid.errors import ReidError

    run = runs("baseline")

    def broken_check(path, fmt, graph, cfg, spec, shapes):
        return [compare(np.ones(3), np.zeros(3) + 0.5, c, t) for c, t in shapes]

    monkeypatch.setattr(export, "check_graph", broken_check)
    with pytest.raises(ReidError, match="disagrees with PyTorch .*C=2, T=4"):
        export.export_run(run, "onnx", tmp_path / "m.onnx")
    assert not any(tmp_path.iterdir())
