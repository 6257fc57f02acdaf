import numpy as np
import pytest
import torch

from reid.errors import ReidError
from reid.evaluation.distances import pairwise_distance
from reid.evaluation.features import flip_average, l2_normalize, pool_chunks, tracklet_features


def _close(a, b, atol=1e-6, rtol=1e-6):
    # np.testing, not torch.testing: the latter's first call imports for seconds
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=atol, rtol=rtol)


def test_distances_match_cdist():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(9, 5, generator=g), torch.randn(13, 5, generator=g)
    ref = torch.cdist(x.double(), y.double())
    _close(pairwise_distance(x, y, block_rows=4), ref.float(), atol=1e-5, rtol=1e-5)
    _close(pairwise_distance(x, y, "sqeuclidean"), (ref ** 2).float(), atol=1e-4, rtol=1e-5)
    cos = 1 - torch.nn.functional.cosine_similarity(x[:, None], y[None], dim=-1)
    _close(pairwise_distance(x, y, "cosine"), cos, atol=1e-5, rtol=1e-5)
    with pytest.raises(ReidError, match="metric"):
        pairwise_distance(x, y, "manhattan")


def test_chunk_pooling_mean_and_max():
    feats = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, -1.0], [0.0, 4.0]])
    owner = torch.tensor([0, 1, 0, 1])
    _close(pool_chunks(feats, owner, 2), torch.tensor([[3.0, -0.5], [1.5, 3.0]]))
    _close(pool_chunks(feats, owner, 2, "max"), torch.tensor([[5.0, 0.0], [3.0, 4.0]]))
    with pytest.raises(ReidError, match="at least one chunk"):
        pool_chunks(feats, owner, 3)


def test_tracklet_features_follow_the_requested_order():
    feats = torch.tensor([[1.0, 1.0], [2.0, 0.0], [3.0, 3.0]])
    out = tracklet_features(feats, ["b", "a", "b"], ["a", "b"], normalize=True)
    _close(out, torch.tensor([[1.0, 0.0], [2 ** -0.5, 2 ** -0.5]]))
    with pytest.raises(ReidError, match="not being evaluated"):
        tracklet_features(feats, ["b", "a", "c"], ["a", "b"])


def test_flip_and_l2():
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    _close(flip_average(a, b), torch.tensor([[1.0, 1.0]]))
    assert np.allclose(l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]])).numpy(), [[0.6, 0.8], [0, 0]])
