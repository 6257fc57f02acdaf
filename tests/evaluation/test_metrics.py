"""CMC / mAP / mINP: hand-built cases with known values, and agreement with the per-query loops of naive.py."""

import numpy as np
import pytest
import torch

from reid.errors import ReidError
from reid.evaluation.camera_pairs import camera_pair_breakdown
from reid.evaluation.metrics import _key_order_torch, _stable_order, evaluate_ranking


def _case_a():
    # query pid 1 cam 1. Sorted by distance: g2 (same id+cam: ignored), g0 (neg), g3 (junk: ignored), g1 (match),
    # g4 (distractor: negative), g5 (match) -> kept list: neg, match, neg, match.
    g_pids = np.array([2, 1, 1, -1, 0, 1])
    g_cams = np.array([2, 2, 1, 3, 2, 3])
    dist = np.array([[0.1, 0.2, 0.05, 0.15, 0.3, 0.4]], dtype=np.float32)
    return dist, np.array([1]), g_pids, np.array([1]), g_cams


def test_hand_built_ap_cmc_inp():
    r = evaluate_ranking(*_case_a())
    assert r.ap[0] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert r.inp[0] == pytest.approx(2 / 4)
    assert r.first_match_rank.tolist() == [2]
    assert r.cmc.tolist() == [0, 1, 1, 1, 1, 1]
    assert (r.num_valid_queries, r.num_queries_without_match) == (1, 0)


def test_trapezoid_ap_matches_the_matlab_formula(naive):
    r = evaluate_ranking(*_case_a(), ap_mode="trapezoid")
    # matches at kept ranks 2 and 4: 1/2 * (0/1 + 1/2)/2 + 1/2 * (1/3 + 2/4)/2 = 1/3
    assert r.ap[0] == pytest.approx(1 / 3)
    dist, _, g_pids, _, g_cams = _case_a()
    order = list(np.argsort(dist[0], kind="stable"))
    ap, cmc = naive.matlab_compute_ap({1, 5}, {2, 3}, order)
    assert r.ap[0] == pytest.approx(ap)
    # a first kept item that is a match: old_precision starts at 1
    r1 = evaluate_ranking(np.array([[0.1, 0.2]], dtype=np.float32), [1], [1, 2], [1], [2, 2],
                          ap_mode="trapezoid")
    assert r1.ap[0] == pytest.approx(1.0)


def test_ties_are_broken_by_gallery_order():
    d = np.array([[0.5, 0.5]], dtype=np.float32)
    assert evaluate_ranking(d, [1], [2, 1], [1], [2, 2]).ap[0] == pytest.approx(0.5)
    assert evaluate_ranking(d, [1], [1, 2], [1], [2, 2]).ap[0] == pytest.approx(1.0)
    # -0.0 and +0.0 are one value; negative distances (e.g. after score normalisation) sort correctly
    d = np.array([[0.0, -0.0, -1.0, -2.0]], dtype=np.float32)
    r = evaluate_ranking(d, [1], [2, 1, 3, 4], [1], [2, 2, 2, 2])
    assert r.first_match_rank.tolist() == [4]


def test_queries_without_match_are_counted_and_reported():
    dist, qp, gp, qc, gc = _case_a()
    dist = np.concatenate([dist, dist])
    qp, qc = np.array([1, 2]), np.array([1, 2])  # pid 2 is only in camera 2 = the query's own camera
    skip = evaluate_ranking(dist, qp, gp, qc, gc)
    assert (skip.num_valid_queries, skip.num_queries_without_match) == (1, 1)
    assert skip.mAP == pytest.approx(0.5) and skip.rank(2) == pytest.approx(1.0)
    assert np.isnan(skip.ap[1]) and skip.first_match_rank[1] == 0
    zero = evaluate_ranking(dist, qp, gp, qc, gc, no_match="zero")
    assert zero.mAP == pytest.approx(0.25) and zero.rank(2) == pytest.approx(0.5)
    assert zero.mINP == pytest.approx(0.25)
    none = evaluate_ranking(dist[1:], qp[1:], gp, qc[1:], gc)
    assert none.num_valid_queries == 0 and np.isnan(none.mAP)


def _random_problem(rng, nq, ng, ties=False):
    g_pids = rng.integers(-1, 12, ng)
    g_cams = rng.integers(1, 4, ng)
    q_pids = rng.integers(0, 12, nq)
    q_cams = rng.integers(1, 4, nq)
    d = rng.integers(0, 6, (nq, ng)) if ties else rng.normal(size=(nq, ng))
    return d.astype(np.float32), q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("ap_mode", ["standard", "trapezoid"])
@pytest.mark.parametrize("ties", [False, True])
def test_agrees_with_the_per_query_loop(naive, ap_mode, ties):
    rng = np.random.default_rng(1)
    for _ in range(4):
        prob = _random_problem(rng, int(rng.integers(1, 60)), int(rng.integers(1, 300)), ties)
        ref = naive.naive_rank(*prob, ap_mode=ap_mode)
        # a tiny block budget forces many blocks
        r = evaluate_ranking(*prob, ap_mode=ap_mode, block_bytes=prob[0].shape[1] * 40 * 7)
        assert np.array_equal(r.first_match_rank, ref["first"])
        np.testing.assert_allclose(r.ap, ref["ap"], atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(r.inp, ref["inp"], atol=1e-6, equal_nan=True)
        s = naive.naive_summary(ref, prob[0].shape[1], prob[0].shape[1])
        if s["num_valid"]:
            np.testing.assert_allclose(r.cmc, s["cmc"], atol=1e-6)
            assert r.mAP == pytest.approx(s["mAP"], abs=1e-6) and r.mINP == pytest.approx(s["mINP"], abs=1e-6)


def test_float64_and_torch_inputs_give_the_same_result(naive):
    prob = _random_problem(np.random.default_rng(2), 30, 200)
    ref = evaluate_ranking(*prob)
    r64 = evaluate_ranking(prob[0].astype(np.float64), *prob[1:])
    rt = evaluate_ranking(torch.from_numpy(prob[0]), *(torch.from_numpy(x) for x in prob[1:]))
    np.testing.assert_allclose(r64.ap, ref.ap, equal_nan=True)
    np.testing.assert_allclose(rt.ap, ref.ap, equal_nan=True)


def test_bad_inputs_raise_clear_errors():
    dist, qp, gp, qc, gc = _case_a()
    with pytest.raises(ReidError, match="g_pids must have shape"):
        evaluate_ranking(dist, qp, gp[:3], qc, gc)
    with pytest.raises(ReidError, match="NaN"):
        evaluate_ranking(np.full_like(dist, np.nan), qp, gp, qc, gc)
    with pytest.raises(ReidError, match="junk"):
        evaluate_ranking(dist, [-1], gp, qc, gc)
    with pytest.raises(ReidError, match="ap_mode"):
        evaluate_ranking(dist, qp, gp, qc, gc, ap_mode="interpolated")


def test_camera_pairs_agree_with_the_per_query_loop(naive):
    rng = np.random.default_rng(3)
    ng = 150
    g_pids = rng.integers(-1, 10, ng)
    g_cams = rng.integers(1, 5, ng)
    q_ids = rng.choice(np.nonzero(g_pids > 0)[0], 25, replace=False)  # queries are gallery items (official)
    d = rng.normal(size=(25, ng)).astype(np.float32)
    d[np.arange(25), q_ids] = -10.0  # each query is nearest to itself
    args = (d, g_pids[q_ids], g_pids, g_cams[q_ids], g_cams, q_ids, np.arange(ng))
    res = camera_pair_breakdown(*args, block_bytes=ng * 40 * 4)
    ref = naive.naive_camera_pairs(*args)
    np.testing.assert_allclose(res.ap, ref["ap"], atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(res.r1, ref["r1"], atol=1e-9, equal_nan=True)
    assert np.array_equal(res.counts, ref["counts"])
    assert res.ap.shape == (4, 4) and 0 <= res.offdiag_mAP <= 1


def test_stable_orders_on_cpu_and_the_accelerator_path_agree():
    rng = np.random.default_rng(4)
    d = rng.integers(-3, 4, (9, 40)).astype(np.float32) * rng.choice([1.0, 0.5, 1e-3], (9, 40)).astype(np.float32)
    ref = np.argsort(d, axis=1, kind="stable")
    t = torch.from_numpy(d)
    assert np.array_equal(_stable_order(t).numpy(), ref)
    assert np.array_equal(_stable_order(t.T.contiguous().T).numpy(), ref)  # non-contiguous input
    assert np.array_equal(_key_order_torch(t + 0.0).numpy(), ref)  # the code path used on CUDA
    assert np.array_equal(_stable_order(t.double()).numpy(), ref)
