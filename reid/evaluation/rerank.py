"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li: "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017) in bounded memory.

With P = queries + gallery (N points) and d the original distance:
  N(p, k)  the k nearest points of p (the list holds k + 1 points: p itself first)            (eq. 2)
  R(p, k)  = {g in N(p, k) : p in N(g, k)}                                                    (eq. 3)
  R*(p, k) = R(p, k) u R(q, k/2) for every q in R(p, k) with |R(q, k/2) n R(p, k)| > 2/3 |R(q, k/2)|   (eq. 4)
  V_p,g    = exp(-d(p, g)) if g in R*(p, k1) else 0, each row normalised to sum 1             (eqs. 7, 8)
  V_p     <- mean of V_g over g in N(p, k2) (local query expansion; the list includes p)     (eq. 10)
  d_J(p, g) = 1 - sum_j min(V_p,j, V_g,j) / sum_j max(V_p,j, V_g,j)                           (eq. 9)
  d*(p, g)  = (1 - lambda) d_J(p, g) + lambda d(p, g)                                          (eq. 11)
Conventions shared with the authors' Python code: each row of d over all N points is divided by its maximum before
anything else; k/2 is round(k1 / 2) (numpy rounding); V rows are normalised. Deliberate deviations: V is kept in
float64 (the authors' code stores it in float16), and ties in distance are broken by point index.

Memory: the common implementations hold several N x N matrices (N = 13290 on MARS: 0.7 GB each in float32). Here
the N x N distances are only visited in blocks (`knn.py`), keeping per point the k nearest neighbours and the row
maximum, plus the query x gallery block of d. V is sparse (each row has |R*| <= ~2 k1 non-zeros before query expansion),
and the Jaccard term is computed only for query rows against gallery rows through an inverted index over V's
columns, in chunks of bounded size.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from reid.errors import ReidError
from reid.evaluation.knn import FeatureSource, MatrixSource, knn_by_rows, knn_symmetric


def _reciprocal(nn: np.ndarray) -> np.ndarray:
    """[N, K] bool: nn[i, m] is a k-reciprocal neighbour of i (i appears in nn[nn[i, m]])."""
    n = nn.shape[0]
    out = np.empty(nn.shape, dtype=bool)
    for s in range(0, n, 4096):
        out[s:s + 4096] = (nn[nn[s:s + 4096]] == np.arange(s, min(n, s + 4096))[:, None, None]).any(-1)
    return out


def _expanded_sets(nn: np.ndarray, k1: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pairs (p, g) with g in R*(p, k1) (eq. 4), sorted and unique."""
    n = nn.shape[0]
    full = nn[:, :k1 + 1]  # shorter when there are fewer than k1 + 1 points
    recip = _reciprocal(full)
    half = full[:, :int(np.around(k1 / 2)) + 1]
    recip_h = _reciprocal(half)
    rows, cols = [], []
    for s in range(0, n, 1024):
        cand, cmask = full[s:s + 1024], recip[s:s + 1024]  # [b, K]
        members, mvalid = half[cand], recip_h[cand]  # [b, K, Kh]
        in_r = ((members[..., None] == cand[:, None, None, :]) & cmask[:, None, None, :]).any(-1)
        size = mvalid.sum(-1)
        accept = cmask & ((mvalid & in_r).sum(-1) > 2 / 3 * size)
        own = np.arange(s, s + cand.shape[0])
        rows += [np.broadcast_to(own[:, None], cand.shape)[cmask],
                 np.broadcast_to(own[:, None, None], members.shape)[accept[..., None] & mvalid]]
        cols += [cand[cmask], members[accept[..., None] & mvalid]]
    key = np.unique(np.concatenate(rows).astype(np.int64) * n + np.concatenate(cols))
    return key // n, key % n


def _jaccard(v: sp.csr_matrix, nq: int, chunk_pairs: int) -> np.ndarray:
    """d_J [Nq, Ng] between query rows and gallery rows of V (eq. 9), via an inverted index over V's columns."""
    n = v.shape[0]
    ng = n - nq
    vq = v[:nq].tocsr()
    vg = v[nq:].tocsc()
    col_nnz = np.diff(vg.indptr)
    row_sum = np.asarray(v.sum(1)).ravel()
    work = vq @ col_nnz.astype(np.float64)  # expanded pairs per query
    out = np.empty((nq, ng), dtype=np.float32)
    bounds = [0]
    acc = 0.0
    max_rows = max(1, (64 << 20) // max(1, 8 * ng))
    for q in range(nq):
        if q > bounds[-1] and (acc + work[q] > chunk_pairs or q - bounds[-1] >= max_rows):
            bounds.append(q)
            acc = 0.0
        acc += work[q]
    bounds.append(nq)
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        blk = vq[s:e].tocoo()
        j, a = blk.col, blk.data
        cnt = col_nnz[j]
        rep = np.repeat(np.arange(j.size), cnt)
        start = np.repeat(vg.indptr[j] - (np.cumsum(cnt) - cnt), cnt)
        idx = start + np.arange(rep.size)
        gidx, b = vg.indices[idx], vg.data[idx]
        smin = np.bincount(blk.row[rep].astype(np.int64) * ng + gidx, weights=np.minimum(a[rep], b),
                           minlength=(e - s) * ng).reshape(e - s, ng)
        smax = row_sum[s:e, None] + row_sum[None, nq:] - smin  # sum(max) = sum(a) + sum(b) - sum(min)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:e] = np.where(smax > 0, 1.0 - smin / smax, 1.0)
    return out


def _rerank(src: FeatureSource | MatrixSource, nq: int, k1: int, k2: int, lambda_value: float,
            block_rows: int, chunk_pairs: int, symmetric: bool = True) -> np.ndarray:
    n = src.n
    if not (1 <= nq < n):
        raise ReidError(f"re-ranking needs at least one query and one gallery item, got {nq} of {n}")
    if k1 < 1 or k2 < 1 or not 0.0 <= lambda_value <= 1.0:
        raise ReidError(f"re-ranking needs k1 >= 1, k2 >= 1, 0 <= lambda <= 1; got {k1}, {k2}, {lambda_value}")
    k = min(n, max(k1 + 1, k2))
    if isinstance(src, FeatureSource) and symmetric:
        nn, row_max, qg = knn_symmetric(src, nq, k, block_rows)
    else:
        nn, row_max, qg = knn_by_rows(src, nq, k, block_rows)
    return rerank_from_neighbours(src, nq, nn, row_max, qg, k1, k2, lambda_value, chunk_pairs)


def rerank_from_neighbours(src: FeatureSource | MatrixSource, nq: int, nn: np.ndarray, row_max: np.ndarray,
                           qg: np.ndarray, k1: int, k2: int, lambda_value: float,
                           chunk_pairs: int = 4_000_000) -> np.ndarray:
    """Eqs. 4-11 from given neighbour lists nn [N, K] (each point first in its own list, K >= min(N, k1 + 1)),
    row maxima row_max [N] and original distances qg [Nq, Ng]; `_rerank` computes these exactly, reid.deploy
    takes nn from a FAISS index (galleries too large for the blocked exact pass)."""
    n = src.n
    k = nn.shape[1]
    if np.any(row_max <= 0):
        raise ReidError("re-ranking: a point has zero distance to every other point (all features identical?)")
    rows, cols = _expanded_sets(nn, k1)
    w = np.exp(-src.pairs(rows, cols) / row_max[rows])
    w /= np.bincount(rows, weights=w, minlength=n)[rows]
    v = sp.csr_matrix((w, (rows, cols)), shape=(n, n))
    if k2 > 1:
        kk = min(k2, k)
        qe = sp.csr_matrix((np.full(n * kk, 1.0 / kk), (np.repeat(np.arange(n), kk), nn[:, :kk].ravel())),
                           shape=(n, n))
        v = (qe @ v).tocsr()
    jaccard = _jaccard(v, nq, chunk_pairs)
    original = qg / row_max[:nq, None].astype(np.float32)
    return ((1.0 - lambda_value) * jaccard + lambda_value * original).astype(np.float32)


def rerank_features(q: torch.Tensor, g: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, *,
                    metric: Literal["sqeuclidean", "euclidean", "cosine"] = "sqeuclidean", block_rows: int = 512,
                    chunk_pairs: int = 4_000_000, device: str | torch.device | None = None) -> np.ndarray:
    """Re-ranked distances [Nq, Ng] (float32) from query features q [Nq, D] and gallery features g [Ng, D].

    The original distance d is `metric` between features ("sqeuclidean" as in the authors' feature-based code).
    Distances and neighbour search run on `device` (default: q's device) in blocks of `block_rows` rows.
    """
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ReidError(f"re-ranking features must be [Nq, D] and [Ng, D], got {tuple(q.shape)}, {tuple(g.shape)}")
    dev = torch.device(device) if device is not None else q.device
    src = FeatureSource(torch.cat([q.to(dev), g.to(dev)]), metric)
    return _rerank(src, q.shape[0], k1, k2, lambda_value, block_rows, chunk_pairs)


def rerank_distances(q_g: torch.Tensor | np.ndarray, q_q: torch.Tensor | np.ndarray, g_g: torch.Tensor | np.ndarray,
                     k1: int = 20, k2: int = 6, lambda_value: float = 0.3, *, block_rows: int = 512,
                     chunk_pairs: int = 4_000_000) -> np.ndarray:
    """Re-ranked distances [Nq, Ng] (float32) from precomputed distances, used as given (not squared).

    For pairwise-scoring models (no per-tracklet embedding), which must then score q-q and g-g pairs as well.
    """
    mats = [x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in (q_g, q_q, g_g)]
    src = MatrixSource(*mats)
    return _rerank(src, src.nq, k1, k2, lambda_value, block_rows, chunk_pairs)
