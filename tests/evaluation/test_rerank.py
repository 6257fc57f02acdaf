"""k-reciprocal re-ranking against the dense implementation of the paper's equations (naive.py)."""

import numpy as np
import pytest
import torch

from reid.errors import ReidError
from reid.evaluation.distances import pairwise_distance
from reid.evaluation.rerank import rerank_distances, rerank_features


def _features(seed, nq, ng, dim=12, ids=8, duplicates=0):
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, ids, nq + ng)
    f = rng.normal(size=(nq + ng, dim)) + 2.0 * rng.normal(size=(ids, dim))[pids]
    if duplicates:  # queries that are also gallery items (MARS official protocol): exact ties
        f[nq:nq + duplicates] = f[:duplicates]
    return torch.tensor(f, dtype=torch.float32)


def _blocks(f, nq):
    d = pairwise_distance(f, f, "sqeuclidean")
    return d[:nq, nq:], d[:nq, :nq], d[nq:, nq:]


@pytest.mark.parametrize(("nq", "ng", "k1", "k2", "lam", "dups"), [
    (10, 60, 20, 6, 0.3, 0), (8, 40, 6, 3, 0.5, 4), (5, 14, 20, 6, 0.3, 0), (12, 50, 7, 1, 0.0, 3),
    (6, 30, 5, 40, 1.0, 0)])
def test_agrees_with_the_dense_paper_implementation(naive, nq, ng, k1, k2, lam, dups):
    f = _features(nq * ng, nq, ng, duplicates=dups)
    qg, qq, gg = _blocks(f, nq)
    ref = naive.dense_rerank(qg.numpy(), qq.numpy(), gg.numpy(), k1, k2, lam)
    # small blocks and chunks exercise the blocked kNN pass and the chunked Jaccard term
    out = rerank_distances(qg, qq, gg, k1, k2, lam, block_rows=7, chunk_pairs=40)
    assert out.shape == (nq, ng) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)
    feat = rerank_features(f[:nq], f[nq:], k1, k2, lam, block_rows=5)
    np.testing.assert_allclose(feat, ref, atol=1e-5)


def test_rerank_changes_the_ranking_towards_reciprocal_neighbours(naive):
    f = _features(7, 10, 60)
    qg, qq, gg = _blocks(f, 10)
    out = rerank_distances(qg, qq, gg)
    assert not np.allclose(np.argsort(out, 1), np.argsort(qg.numpy() / gg.max().item(), 1))


def test_bad_inputs():
    f = _features(0, 4, 10)
    qg, qq, gg = _blocks(f, 4)
    with pytest.raises(ReidError, match="q_q"):
        rerank_distances(qg, gg, gg)
    with pytest.raises(ReidError, match="lambda"):
        rerank_distances(qg, qq, gg, lambda_value=1.5)
    with pytest.raises(ReidError, match="features"):
        rerank_features(f[:4], f[4:, :3])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symmetric_knn_pass_equals_the_row_pass_even_with_ties(seed):
    from reid.evaluation.knn import FeatureSource, knn_by_rows, knn_symmetric

    rng = np.random.default_rng(seed)
    # small integer features: exact, heavily tied distances; plus duplicated points
    f = torch.tensor(rng.integers(0, 3, (53, 4)), dtype=torch.float32)
    f[40:45] = f[:5]
    src = FeatureSource(f, "sqeuclidean")
    for k, rows in ((21, 6), (5, 7), (53, 10)):
        a = knn_by_rows(src, 9, k, rows)
        b = knn_symmetric(src, 9, k, rows)
        ref = np.argsort(pairwise_distance(f, f, "sqeuclidean").numpy(), axis=1, kind="stable")[:, :k]
        assert np.array_equal(a[0], ref) and np.array_equal(b[0], ref)
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2])
