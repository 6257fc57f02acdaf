"""The k nearest neighbours of every point of an IVF index (eq. 2's N(p, k) of Zhong et al. CVPR 2017 for all N
points at once), by dense matrix products over the index's inverted lists.

Why not `index.search(all N points)`: an IVF search scans each query's `nprobe` lists one vector at a time, which is
bound by memory bandwidth (at 100,000 x 2048-d and nprobe 8 every query streams ~20 MB). When the queries are the
indexed points themselves, the points of one list share their candidates, so each list becomes one small GEMM
([m, D] x [D, C], m the list's size, C its candidates'), at BLAS speed.

Cost control: the work is sum over lists of m x C x D, so a few huge lists dominate it. k-means on re-ID embeddings
can leave a few low-norm "mixture" centroids holding a large share of the points (profiled at 100,000 x 2048-d,
1264 lists: the largest held 9858 points, and since a low-norm centroid is near every other centroid, every list
probed the same large lists: 33,000 candidates per list, 13.6 TFLOP; 677 s). So
  - a list larger than `2 N / nlist` is cut in halves by a balanced 2-means (`_halves`) until every part is at most
    that size; the parts keep same-identity points together (they pull the 2-means directions);
  - each part takes as candidates the parts whose centroids (their points' means) are nearest to its own, its own
    first, until they hold `nprobe N / nlist` points (the IVF search's work at that nprobe with balanced lists).
Approximation against an exact kNN: a point's neighbours outside its part's candidate parts are missed. With
nprobe >= nlist every part is a candidate of every part and the lists are exact.
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


def _halves(x: torch.Tensor, rng: np.random.Generator, rounds: int = 4) -> np.ndarray:
    """Balanced 2-means of x [m, D] (m >= 2): a bool mask [m] with m // 2 True. Each round splits at the median of
    the projection on c0 - c1 (the 2-means boundary moved to the median), then recomputes c0, c1 as the halves'
    means; starts from two random points."""
    m = x.shape[0]
    c = x[torch.from_numpy(rng.choice(m, 2, replace=False))]
    mask = np.zeros(m, dtype=bool)
    for _ in range(rounds):
        s = (x @ (c[0] - c[1])).numpy()
        mask[:] = False
        mask[np.argsort(-s, kind="stable")[:m // 2]] = True
        t = torch.from_numpy(mask)
        c = torch.stack([x[t].mean(0), x[~t].mean(0)])
    return mask


def balanced_parts(f: torch.Tensor, lists: list[np.ndarray], cap: int, seed: int = 0) -> list[np.ndarray]:
    """The non-empty lists, each list larger than `cap` cut recursively by `_halves` into parts of <= cap rows."""
    rng = np.random.default_rng(seed)
    out, todo = [], [x for x in lists if len(x)]
    while todo:
        ids = todo.pop()
        if len(ids) <= cap:
            out.append(ids)
            continue
        mask = _halves(f[torch.from_numpy(ids)], rng)
        todo += [ids[~mask], ids[mask]]
    return out


def ivf_neighbours(index, f: torch.Tensor, k: int, nprobe: int | None = None, *, seed: int = 0) -> np.ndarray:
    """nn [N, k] int64: for each row p of f [N, D] (float32, CPU; the vectors the index holds, ids 0..N-1), its
    k nearest rows by squared L2, p itself first, then ascending distance (ties by row id among the candidates).

    The order by squared L2 is the order of every metric of reid.evaluation.distances on the given rows (cosine:
    pass L2-normalised rows). The index's lists are cut into parts of at most 2 N / nlist rows; each part's points
    are compared with the parts nearest to it holding nprobe N / nlist points (default nprobe: the index's own);
    nprobe >= nlist is exact.
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
    parts = balanced_parts(f, lists, cap=max(1, -(-2 * n // nlist)), seed=seed)
    order = np.concatenate(parts)
    sizes = np.array([len(x) for x in parts])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    fs = f[torch.from_numpy(order)].contiguous()  # rows grouped by part: every candidate part is a slice
    sq = (fs * fs).sum(1)
    cent = torch.stack([fs[a:b].mean(0) for a, b in zip(starts[:-1], starts[1:], strict=True)])
    cd = torch.cdist(cent, cent)
    cd.fill_diagonal_(-1.0)  # the part itself first: then its own points are the first columns
    near = torch.argsort(cd, dim=1, stable=True).numpy()
    budget = n if nprobe >= nlist else -(-nprobe * n // nlist)
    reach = (np.cumsum(sizes[near], axis=1) < budget).sum(1) + 1  # parts until they hold >= budget points
    out = np.empty((n, k), dtype=np.int64)
    ids = torch.from_numpy(order)
    for pi in range(len(parts)):
        a, b = starts[pi], starts[pi + 1]
        spans = [slice(starts[p], starts[p + 1]) for p in near[pi, :reach[pi]]]
        cand = torch.cat([ids[x] for x in spans])
        csq = torch.cat([sq[x] for x in spans])
        # ||a||^2 + ||c||^2 - 2 a.c; one GEMM against the gathered candidates beats one per candidate part
        d = torch.addmm(csq[None], fs[a:b], torch.cat([fs[x] for x in spans]).T, alpha=-2.0).add_(sq[a:b, None])
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
