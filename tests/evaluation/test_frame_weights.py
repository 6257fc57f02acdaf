"""The frame-weight check's data (reid.evaluation.run.frame_weights): visibility from keypoints, relative weights,
the shown - lost gap and the rank correlation against naive loops, and a real model's weights on a tiny set."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reid.config import build_config
from reid.data.batching import eval_clip_indices
from reid.data.info import data_info
from reid.data.records import read_manifest
from reid.data.source import manifest_path
from reid.errors import ReidError
from reid.evaluation.run.frame_weights import (
    lost_gap,
    relative_weights,
    tracklet_weights,
    visibility,
    visibility_correlation,
    weight_shape,
)
from reid.models.factory import build_method


def _naive_visibility(kps):
    out = []
    for frame in kps:
        out.append(sum(1 for joint in frame if joint[2] > 0) / len(frame))
    return out


def _naive_gap(w, v):
    shown, lost = [], []
    for wc, vc in zip(w, v, strict=True):
        mean = sum(wc) / len(wc)
        for wt, vt in zip(wc, vc, strict=True):
            (lost if vt == 0 else shown).append(wt / mean)
    if not shown or not lost:
        return math.nan
    return sum(shown) / len(shown) - sum(lost) / len(lost)


def _ranks(x):
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(x):  # ties share their mean rank
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def _naive_spearman(a, b):
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))


def test_visibility_is_the_share_of_joints_with_confidence():
    rng = np.random.default_rng(0)
    kps = rng.random((6, 18, 3)).astype(np.float32)
    kps[..., 2] = np.where(rng.random((6, 18)) < 0.3, 0.0, kps[..., 2])
    kps[2, :, 2] = 0.0  # a lost frame
    np.testing.assert_allclose(visibility(kps), _naive_visibility(kps))
    assert visibility(kps)[2] == 0.0


def test_lost_gap_and_correlation_match_naive_loops():
    rng = np.random.default_rng(1)
    for _ in range(20):
        w = rng.random((3, 8)) + 0.05
        v = np.round(rng.random((3, 8)), 1)
        v[rng.random((3, 8)) < 0.2] = 0.0
        assert lost_gap(w, v) == pytest.approx(_naive_gap(w.tolist(), v.tolist()), nan_ok=True)
        rhos = [_naive_spearman(a.tolist(), b.tolist()) for a, b in zip(w, v, strict=True) if np.ptp(b) > 0]
        assert visibility_correlation(w, v) == pytest.approx(np.mean(rhos))


def test_the_gap_by_hand_and_where_it_is_undefined():
    w = np.array([[1.0, 1.0, 0.5, 1.0]])
    v = np.array([[1.0, 1.0, 0.0, 0.5]])
    assert lost_gap(w, v) == pytest.approx((1.0 - 0.5) / 0.875)
    assert math.isnan(lost_gap(w, np.ones_like(v)))  # no lost frame
    assert math.isnan(lost_gap(w, np.zeros_like(v)))  # nothing shown
    np.testing.assert_allclose(relative_weights(np.full((2, 4), 0.25)), 1.0)  # mean pooling
    assert lost_gap(np.full((1, 4), 0.3), v) == 0.0  # uniform sigmoid weights: no preference


def test_correlation_signs_and_uniform_weights():
    v = np.array([[1.0, 0.0, 0.5, 0.8]])
    assert visibility_correlation(v + 0.1, v) == pytest.approx(1.0)
    assert visibility_correlation(1.1 - v, v) == pytest.approx(-1.0)
    assert math.isnan(visibility_correlation(np.full((1, 4), 0.7), v))  # weights do not vary
    assert math.isnan(visibility_correlation(v, np.ones((1, 4))))  # visibility does not vary


def test_weight_shape_sum_and_spread():
    total, cv = weight_shape(np.full((3, 8), 1 / 8))
    assert total == pytest.approx(1.0) and cv == pytest.approx(0.0)
    total, cv = weight_shape(np.array([[0.5, 1.0]]))
    assert total == pytest.approx(1.5) and cv == pytest.approx(0.25 / 0.75)


def _fcnta(root, *overrides):
    return build_config("fcnta", ["fcnta-synth-cpu"], [f"data.root={root}", "data.seq_len=4", "data.height=32",
                                                       "data.width=16", "ray.num_workers=0", *overrides])


def _checkpoint(cfg, directory):
    info = data_info(read_manifest(manifest_path(cfg.data)), cfg.data)
    directory.mkdir(parents=True)
    torch.save({"model": build_method(cfg, info).model.state_dict()}, directory / "state.pt")
    return directory


@pytest.mark.timeout(300)
def test_a_real_model_gives_its_weights_beside_the_keypoints_visibility(tiny_synth, tmp_path):
    cfg = _fcnta(tiny_synth)
    out = tracklet_weights(cfg, _checkpoint(cfg, tmp_path / "ckpt"), limit=3)
    m = read_manifest(manifest_path(cfg.data))
    by_id = {r.tracklet_id: r for r in m.records}
    assert len(out) == 3
    for t in out:
        rec = by_id[t.tracklet_id]
        idx = eval_clip_indices(cfg.data, rec.num_frames)
        assert t.weights.shape == t.visibility.shape == idx.shape
        kps = np.load(m.locate(rec.keypoints))
        np.testing.assert_allclose(t.visibility, np.asarray(_naive_visibility(kps))[idx])
        assert ((t.weights > 0) & (t.weights < 1)).all()  # sigmoid weights, eq. 1b
    mean = _fcnta(tiny_synth, "model.pooling=mean")
    for t in tracklet_weights(mean, _checkpoint(mean, tmp_path / "mean"), limit=2):
        np.testing.assert_allclose(t.weights, 1 / t.weights.shape[1])


@pytest.mark.timeout(300)
def test_a_model_without_temporal_weights_is_a_clear_error(tiny_synth, tmp_path):
    cfg = build_config("baseline", [], [f"data.root={tiny_synth}", "data.seq_len=4", "data.height=32",
                                        "data.width=16", "model.depth=18", "model.pretrained=false"])
    with pytest.raises(ReidError, match="no per-frame temporal weights"):
        tracklet_weights(cfg, _checkpoint(cfg, tmp_path / "ckpt"), limit=1)
