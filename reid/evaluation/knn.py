"""Neighbour search over all N = Nq + Ng points for re-ranking, in bounded memory.

Two sources of distances: features (computed on demand, on the features' device) and three precomputed blocks
(q_g, q_q, g_g). Both passes keep per point only its k nearest neighbours (ties broken by point index, as a stable
sort would), its maximum distance, and the query x gallery block of d.

- `knn_by_rows` visits full rows block by block (any source).
- `knn_symmetric` (features) visits each unordered pair of row blocks once and uses the block for both of them,
  which halves the N^2 D matrix products that dominate the cost at ResNet-50 feature sizes. Each block contributes
  its top-(k+1) candidates per row; merged candidate lists are exact unless a tie straddles a block's cut, and the
  rare rows where that happens are recomputed in full.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from reid.errors import ReidError
from reid.evaluation.distances import METRICS, pairwise_distance
from reid.progress import bar as progress_bar


class FeatureSource:
    """Distances among the rows of feats [N, D] (queries first), computed on demand."""

    def __init__(self, feats: torch.Tensor, metric: str) -> None:
        if metric not in METRICS:
            raise ReidError(f"unknown distance metric '{metric}'; expected one of {METRICS}")
        self.f = feats.float()
        if metric == "cosine":
            self.f = torch.nn.functional.normalize(self.f, dim=1)
        self.metric = metric
        self.n = feats.shape[0]

    def rows(self, s: int, e: int) -> torch.Tensor:
        return pairwise_distance(self.f[s:e], self.f, self.metric)

    def block(self, s: int, e: int, t: int, u: int) -> torch.Tensor:
        return pairwise_distance(self.f[s:e], self.f[t:u], self.metric)

    def rows_at(self, idx: torch.Tensor) -> torch.Tensor:
        return pairwise_distance(self.f[idx.to(self.f.device)], self.f, self.metric)

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Distances of the pairs (i, j); i must be sorted (as `_expanded_sets` returns them)."""
        dev = self.f.device
        crow = torch.from_numpy(np.concatenate([[0], np.cumsum(np.bincount(i, minlength=self.n))]))
        a, b = torch.from_numpy(i).to(dev), torch.from_numpy(j).to(dev)
        with warnings.catch_warnings():  # sparse CSR is flagged "beta"; sampled_addmm avoids gathering [P, D] rows
            warnings.simplefilter("ignore", UserWarning)
            mask = torch.sparse_csr_tensor(crow.to(dev), b, torch.zeros(b.numel(), device=dev),
                                           size=(self.n, self.n), check_invariants=False)
            dot = torch.sparse.sampled_addmm(mask, self.f, self.f.T, beta=0.0).values()
        if self.metric == "cosine":
            d = 1.0 - dot
        else:
            sq = (self.f * self.f).sum(1)
            d = (sq[a] + sq[b] - 2 * dot).clamp(min=0)
            d = d.sqrt() if self.metric == "euclidean" else d
        return d.double().cpu().numpy()


class MatrixSource:
    """Distances given as the three blocks q_g [Nq, Ng], q_q [Nq, Nq], g_g [Ng, Ng] (used as they are)."""

    def __init__(self, q_g: torch.Tensor, q_q: torch.Tensor, g_g: torch.Tensor) -> None:
        nq, ng = q_g.shape
        if q_q.shape != (nq, nq) or g_g.shape != (ng, ng):
            raise ReidError(f"re-ranking needs q_g [Nq, Ng], q_q [Nq, Nq], g_g [Ng, Ng]; got {tuple(q_g.shape)}, "
                            f"{tuple(q_q.shape)}, {tuple(g_g.shape)}")
        self.qg, self.qq, self.gg = q_g.float(), q_q.float(), g_g.float()
        self.nq, self.n = nq, nq + ng

    def rows(self, s: int, e: int) -> torch.Tensor:
        nq = self.nq
        parts = []
        if s < nq:
            parts.append(torch.cat([self.qq[s:min(e, nq)], self.qg[s:min(e, nq)]], 1))
        if e > nq:
            a, b = max(s, nq) - nq, e - nq
            parts.append(torch.cat([self.qg[:, a:b].T, self.gg[a:b]], 1))
        return torch.cat(parts, 0)

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        nq = self.nq
        out = np.empty(i.size, dtype=np.float64)
        for qi, qj, m in ((True, True, self.qq), (True, False, self.qg), (False, False, self.gg)):
            sel = ((i < nq) == qi) & ((j < nq) == qj)
            out[sel] = m[i[sel] - (0 if qi else nq), j[sel] - (0 if qj else nq)].double().cpu().numpy()
        sel = (i >= nq) & (j < nq)
        out[sel] = self.qg[j[sel], i[sel] - nq].double().cpu().numpy()
        return out


def smallest_k(d: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B, k] of the k smallest entries per row of d [B, N] (float32), ascending, ties by index.

    A float top-(k+1) finds candidates, which are re-sorted by (value, index). When the k-th value is smaller than
    the last candidate's, the candidates hold every entry up to the k-th value, so the result is exact; the other
    rows (a tie straddling the cut, e.g. duplicate features) get a full stable sort.
    """
    n = d.shape[1]
    kk = min(k + 1, n)
    vals, idx = torch.topk(d, kk, dim=1, largest=False, sorted=True)
    by_idx = torch.sort(idx, dim=1).indices  # order candidates by index, then stably by value
    idx, vals = idx.gather(1, by_idx), vals.gather(1, by_idx)
    by_val = torch.sort(vals, dim=1, stable=True).indices
    idx, vals = idx.gather(1, by_val)[:, :k], vals.gather(1, by_val)
    if kk > k:
        straddle = torch.nonzero(vals[:, k - 1] == vals[:, kk - 1]).flatten()
        if straddle.numel():
            idx[straddle] = torch.sort(d[straddle], dim=1, stable=True).indices[:, :k]
    return idx


def _by_value_then_index(vals: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort the candidate lists [B, M] by (value, index)."""
    o = torch.sort(idx, dim=1).indices
    vals, idx = vals.gather(1, o), idx.gather(1, o)
    o = torch.sort(vals, dim=1, stable=True).indices
    return vals.gather(1, o), idx.gather(1, o)


def _check(d: torch.Tensor) -> None:
    if bool(torch.isnan(d).any()):
        raise ReidError("re-ranking: the distances contain NaN")


def knn_by_rows(src: FeatureSource | MatrixSource, nq: int, k: int,
                block_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nn [N, k] int64, row_max [N] float64, q_g [Nq, Ng] float32) from full rows, `block_rows` at a time."""
    n = src.n
    nn = np.empty((n, k), dtype=np.int64)
    row_max = np.empty(n, dtype=np.float64)
    qg = np.empty((nq, n - nq), dtype=np.float32)
    for s in progress_bar(range(0, n, block_rows), desc="re-ranking kNN", unit="blocks"):
        d = src.rows(s, min(n, s + block_rows))
        _check(d)
        row_max[s:s + d.shape[0]] = d.max(1).values.double().cpu().numpy()
        nn[s:s + d.shape[0]] = smallest_k(d, k).cpu().numpy()
        if s < nq:
            qg[s:min(nq, s + d.shape[0])] = d[:nq - s, nq:].cpu().numpy()
    return nn, row_max, qg


def knn_symmetric(src: FeatureSource, nq: int, k: int,
                  block_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As `knn_by_rows`, computing each block of the symmetric N x N distance matrix once.

    Blocks are side x side with side = sqrt(block_rows x N): the same memory as a block of `block_rows` full rows,
    and few, large operations (small ones cost more than their arithmetic on a busy CPU).
    """
    n, dev = src.n, src.f.device
    side = max(block_rows, math.isqrt(block_rows * n))
    cuts = sorted({*range(0, nq, side), *range(nq, n, side), n})
    blocks = list(zip(cuts[:-1], cuts[1:], strict=True))
    cand_v: list[list[torch.Tensor]] = [[] for _ in blocks]  # per row block: [rows, <= k + 1] per column block
    cand_i: list[list[torch.Tensor]] = [[] for _ in blocks]
    row_max = torch.full((n,), float("-inf"), device=dev)
    redo = torch.zeros(n, dtype=torch.bool, device=dev)
    qg = np.empty((nq, n - nq), dtype=np.float32)

    def add(a: int, d: torch.Tensor, col0: int) -> None:  # d: [rows of block a, m] distances to columns col0..
        s, e = blocks[a]
        row_max[s:e] = torch.maximum(row_max[s:e], d.max(1).values)
        kk = min(k + 1, d.shape[1])
        v, i = torch.topk(d, kk, dim=1, largest=False, sorted=True)
        if kk > k:  # a tie across this block's cut may hide a lower-index equal value: recompute the row
            redo[s:e] |= v[:, k - 1] == v[:, k]
        cand_v[a].append(v)
        cand_i[a].append(i + col0)

    pairs = [(a, b) for a in range(len(blocks)) for b in range(a, len(blocks))]
    for a, b in progress_bar(pairs, desc="re-ranking kNN", unit="blocks"):
        (s, e), (t, u) = blocks[a], blocks[b]
        d = src.block(s, e, t, u)
        _check(d)
        add(a, d, t)
        if a != b:
            add(b, d.T.contiguous(), s)
        if s < nq <= t:
            qg[s:e, t - nq:u - nq] = d.cpu().numpy()
    best_i = torch.empty((n, k), dtype=torch.int64, device=dev)
    for a, (s, e) in enumerate(blocks):  # merged candidates hold each row's k nearest (exact unless redo)
        v, i = _by_value_then_index(torch.cat(cand_v[a], 1), torch.cat(cand_i[a], 1))
        best_i[s:e] = i[:, :k]
        cand_v[a] = cand_i[a] = []
    rows = torch.nonzero(redo).flatten()
    for r in range(0, rows.numel(), block_rows):  # full rows for the rows with a tie across a cut
        sel = rows[r:r + block_rows]
        best_i[sel] = smallest_k(src.rows_at(sel), k)
    return best_i.cpu().numpy(), row_max.double().cpu().numpy(), qg
