"""k-reciprocal re-ranking (reid.evaluation.rerank, Zhong et al. CVPR 2017 eqs. 4-11) for galleries too large for
the exact blocked pass: the neighbour lists N(p, k) of eq. 2 come from a FAISS index instead of all N^2 distances.

Approximations against `rerank_features`, all measured in docs/deploy.md:
  - the gallery points' N(p, k) are the index's answer: for an IVF index (IVF-Flat, IVF-PQ) computed by
    `ivf_knn.ivf_neighbours` (GEMMs over the inverted lists cut into balanced parts, exact within each part's
    candidate parts), for any other index by `index.search` (exact for a flat index); the queries' lists are exact
    (their full rows are computed anyway);
  - a gallery point's maximum distance, which divides its row of d (the authors' normalisation), is the maximum
    over the queries and a fixed random sample of `sample` points instead of over all N (a lower bound; with
    L2-normalised features all distances lie in [0, 2] and the sampled maximum is close to the true one).
The query x gallery block of d is exact. Memory: the features, O(N k) for the lists, the sparse V and the Nq x N
query rows; never an N x N matrix.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from reid.deploy.ivf_knn import ivf_neighbours
from reid.errors import ReidError
from reid.evaluation.distances import pairwise_distance
from reid.evaluation.knn import FeatureSource, smallest_k
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


class _Phases(dict):
    """The caller's `stats` dict, telling `log` each key as it is set (a long run shows where it is)."""

    def __init__(self, out: dict, log: Callable[[str], None] | None) -> None:
        super().__init__()
        self.out, self.log = out, log

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(key, value)
        self.out[key] = value
        if self.log is not None:
            self.log(f"{key} {value:.4g}")


def _is_ivf(index) -> bool:
    import faiss

    try:
        faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError):
        return False
    return True


def rerank_with_index(feats: torch.Tensor, nq: int, index, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                      *, metric: str = "sqeuclidean", sample: int = 256, seed: int = 0, nprobe: int | None = None,
                      block_rows: int = 256, stats: dict | None = None,
                      log: Callable[[str], None] | None = None) -> np.ndarray:
    """Re-ranked distances [Nq, Ng] for feats [N, D] (queries first), `index` a FAISS index over all N rows in
    that order (an L2 index; for "cosine" over L2-normalised rows). `nprobe` (IVF only) defaults to the index's.
    `stats`, when given, receives the wall seconds of each phase, the CPU seconds of the whole, and `knn_recall_queries`: the share of the queries'
    exact k nearest neighbours that the index's lists held (the queries are the only rows whose exact lists are
    computed; a measure of the gallery lists' recall when queries are drawn like gallery points); `log`, when
    given, each phase's name as it ends."""
    n = feats.shape[0]
    if not 1 <= nq < n:
        raise ReidError(f"re-ranking needs at least one query and one gallery item, got {nq} of {n}")
    if index.ntotal != n:
        raise ReidError(f"the index holds {index.ntotal} vectors, the features {n}")
    k = min(n, max(k1 + 1, k2))
    stats = _Phases({} if stats is None else stats, log)
    t, c0 = time.perf_counter(), time.process_time()
    src = FeatureSource(feats, metric)
    if _is_ivf(index):
        nn = ivf_neighbours(index, src.f, k, nprobe)
    else:
        nn = index_neighbours(index, src.f.numpy(), k)
    stats["knn_s"], t = time.perf_counter() - t, time.perf_counter()
    pick = torch.from_numpy(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    row_max = np.concatenate([pairwise_distance(src.f[s:s + 8192], src.f[pick], metric).max(1).values.double()
                              .numpy() for s in range(0, n, 8192)])
    stats["row_max_s"], t = time.perf_counter() - t, time.perf_counter()
    qg = np.empty((nq, n - nq), dtype=np.float32)
    approx = nn[:nq].copy()
    for s in range(0, nq, block_rows):  # full query rows: exact qg, and the queries' exact lists and maxima
        d = src.rows(s, min(nq, s + block_rows))
        qg[s:s + d.shape[0]] = d[:, nq:].numpy()
        nn[s:s + d.shape[0]] = smallest_k(d, k).numpy()
        row_max[s:s + d.shape[0]] = d.max(1).values.double().numpy()
        row_max[nq:] = np.maximum(row_max[nq:], d[:, nq:].max(0).values.double().numpy())  # d is symmetric
    stats["query_rows_s"], t = time.perf_counter() - t, time.perf_counter()
    stats["knn_recall_queries"] = float((approx[:, :, None] == nn[:nq, None, :]).any(-1).mean())
    out = rerank_from_neighbours(src, nq, nn, row_max, qg, k1, k2, lambda_value)
    stats["eqs_4_11_s"] = time.perf_counter() - t
    stats["cpu_s"] = time.process_time() - c0  # CPU seconds of this process (all its threads): load-independent
    return out
