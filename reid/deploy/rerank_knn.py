"""k-reciprocal re-ranking (reid.evaluation.rerank, Zhong et al. CVPR 2017 eqs. 4-11) for galleries too large for
the exact blocked pass: the neighbour lists N(p, k) of eq. 2 come from a FAISS index instead of all N^2 distances.

Two approximations against `rerank_features`, both measured in docs/deploy.md:
  - N(p, k) is the index's answer (exact for a flat index, approximate for IVF / HNSW);
  - the per-row maximum distance that divides d (the authors' normalisation) is the maximum over a fixed random
    sample of `sample` points instead of all N (a lower bound; with L2-normalised features all distances lie in
    [0, 2] and the sampled maximum is close to the true one).
The query x gallery block of d is exact (Nq x Ng, computed in blocks). Memory: O(N k) for the lists plus the sparse
V and the Nq x Ng output; never an N x N matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from reid.errors import ReidError
from reid.evaluation.distances import pairwise_distance
from reid.evaluation.knn import FeatureSource
from reid.evaluation.rerank import rerank_from_neighbours


def index_neighbours(index, feats: np.ndarray, k: int, batch: int = 4096) -> np.ndarray:
    """nn [N, k] int64 from a FAISS index over exactly these `feats` rows; each row starts with the point itself
    (eq. 2's list includes p), and a -1 (fewer than k found) is replaced by the point itself."""
    n = feats.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, batch):
        _, ids = index.search(np.ascontiguousarray(feats[s:s + batch], dtype=np.float32), k)
        own = np.arange(s, s + ids.shape[0])
        ids = np.where(ids < 0, own[:, None], ids)
        rest = np.where(ids == own[:, None], -1, ids)  # drop p wherever the index put it, then prepend it
        order = np.argsort(rest < 0, axis=1, kind="stable")
        rest = np.take_along_axis(rest, order, axis=1)[:, :k - 1]
        rest = np.where(rest < 0, own[:, None], rest)
        out[s:s + ids.shape[0]] = np.concatenate([own[:, None], rest], axis=1)
    return out


def rerank_with_index(feats: torch.Tensor, nq: int, index, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                      *, metric: str = "sqeuclidean", sample: int = 2048, seed: int = 0) -> np.ndarray:
    """Re-ranked distances [Nq, Ng] for feats [N, D] (queries first), `index` a FAISS index over all N rows in
    that order (searched with its own metric; for "sqeuclidean" and "euclidean" an L2 index)."""
    n = feats.shape[0]
    if not 1 <= nq < n:
        raise ReidError(f"re-ranking needs at least one query and one gallery item, got {nq} of {n}")
    if index.ntotal != n:
        raise ReidError(f"the index holds {index.ntotal} vectors, the features {n}")
    k = min(n, max(k1 + 1, k2))
    nn = index_neighbours(index, feats.numpy(), k)
    src = FeatureSource(feats, metric)
    pick = torch.from_numpy(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    row_max = np.concatenate([pairwise_distance(src.f[s:s + 8192], src.f[pick], metric).max(1).values.double()
                              .numpy() for s in range(0, n, 8192)])
    qg = pairwise_distance(src.f[:nq], src.f[nq:], metric).numpy()
    return rerank_from_neighbours(src, nq, nn, row_max, qg, k1, k2, lambda_value)
