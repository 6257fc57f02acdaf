"""The k nearest neighbours of every point of an IVF index (eq. 2's N(p, k) of Zhong et al. CVPR 2017 for all N
points at once), by dense matrix products over the index's inverted lists.

Why not `index.search(all N points)`: an IVF search scans each query's `nprobe` lists one vector at a time, which is
bound by memory bandwidth (at 100,000 x 2048-d and nprobe 8 every query streams ~20 MB). When the queries are the
indexed points themselves, the points of one inverted list share their probe set, so each list becomes one small
GEMM against its probed lists ([m, D] x [D, C], m the list's size, C the probed lists' total), at BLAS speed.
Approximation against a per-point IVF search: a point probes the `nprobe` lists nearest to its own list's centroid
(not to itself); a point near its cell's border may miss a neighbour in a cell that is not among those.
"""

from __future__ import annotations

import numpy as np
import torch

from reid.errors import ReidError


def ivf_lists(index) -> tuple[object, list[np.ndarray]]:
    """(the IVF part of `index`, the row ids of each inverted list); ReidError for an index without lists."""
    import faiss

    try:
        ivf = faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError) as e:  # faiss raises RuntimeError for a non-IVF index
        raise ReidError(f"not an IVF index ({type(index).__name__}): {e}") from e
    inv = ivf.invlists
    return ivf, [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy().astype(np.int64)
                 if inv.list_size(i) else np.empty(0, np.int64) for i in range(ivf.nlist)]


def ivf_neighbours(index, f: torch.Tensor, k: int, nprobe: int | None = None) -> np.ndarray:
    """nn [N, k] int64: for each row p of f [N, D] (float32, CPU; the vectors the index holds, ids 0..N-1), its
    k nearest rows by squared L2, p itself first, then ascending distance (ties by row id among the candidates).

    The order by squared L2 is the order of every metric of reid.evaluation.distances on the given rows (cosine:
    pass L2-normalised rows). Each list's points are compared with the points of the `nprobe` lists (default: the
    index's own nprobe) whose centroids are nearest to the list's centroid; nprobe = nlist is exact.
    """
    n = f.shape[0]
    ivf, lists = ivf_lists(index)
    if ivf.ntotal != n:
        raise ReidError(f"the index holds {ivf.ntotal} vectors, the features {n}")
    order = np.concatenate(lists)
    if np.bincount(order, minlength=n).max(initial=0) != 1 or order.size != n:
        raise ReidError("the index's ids are not the row numbers 0..N-1 of the features")
    nlist = len(lists)
    nprobe = min(nlist, nprobe or ivf.nprobe)
    sizes = np.array([len(x) for x in lists])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    fs = f[torch.from_numpy(order)].contiguous()  # rows grouped by list: every probed list is a slice, not a gather
    sq = (fs * fs).sum(1)
    cent = torch.from_numpy(ivf.quantizer.reconstruct_n(0, nlist))
    cd = torch.cdist(cent, cent)
    cd.fill_diagonal_(-1.0)  # the list itself first: then its own points are the first columns
    cd[:, torch.from_numpy(sizes == 0)] = float("inf")
    probe = torch.topk(cd, nprobe, dim=1, largest=False, sorted=True).indices.numpy()
    out = np.empty((n, k), dtype=np.int64)
    ids = torch.from_numpy(order)
    for li in np.flatnonzero(sizes):
        a, b = starts[li], starts[li + 1]
        cols = [p for p in probe[li] if sizes[p]]
        parts = [slice(starts[p], starts[p + 1]) for p in cols]
        dot = fs[a:b] @ torch.cat([fs[x] for x in parts]).T  # [m, C]: one GEMM beats one per probed list
        cand = torch.cat([ids[x] for x in parts])
        csq = torch.cat([sq[x] for x in parts])
        d = (sq[a:b, None] + csq[None]).sub_(dot, alpha=2.0)
        m = b - a
        d[torch.arange(m), torch.arange(m)] = float("-inf")  # p itself first, whatever rounding gives d(p, p)
        kk = min(k, d.shape[1])
        v, i = torch.topk(d, kk, dim=1, largest=False, sorted=True)
        i = cand[i]
        o = torch.sort(i, dim=1).indices  # ties by row id: order by id, then stably by distance
        v, i = v.gather(1, o), i.gather(1, o)
        i = i.gather(1, torch.sort(v, dim=1, stable=True).indices)
        rows = order[a:b]
        out[rows, :kk] = i.numpy()
        out[rows, kk:] = rows[:, None]  # fewer than k candidates: the point itself (as index_neighbours does)
    return out
