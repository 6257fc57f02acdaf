"""Straightforward reference implementations, written from the definitions with per-query / per-item loops.

Used by the tests (agreement with the vectorised code) and by `reid bench eval` (the speed / memory baseline).
They are deliberately simple, not fast.
"""

from __future__ import annotations

import numpy as np


def naive_rank(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
               g_camids: np.ndarray, ap_mode: str = "standard") -> dict[str, np.ndarray]:
    """Per-query CMC hit rank, AP and INP, one query at a time (torchreid `eval_func` style).

    Returns per-query arrays: `first` (1-based rank of the first match among kept items, 0 = none), `ap`, `inp`
    (NaN when no match). Ties are broken by gallery order (stable sort), like the library.
    """
    nq = distmat.shape[0]
    first = np.zeros(nq, dtype=np.int64)
    ap = np.full(nq, np.nan)
    inp = np.full(nq, np.nan)
    for i in range(nq):
        order = np.argsort(distmat[i], kind="stable")
        pid, cam = q_pids[i], q_camids[i]
        junk = (g_pids[order] == -1) | ((g_pids[order] == pid) & (g_camids[order] == cam))
        matches = (g_pids[order][~junk] == pid).astype(np.float64)
        if matches.sum() == 0:
            continue
        ranks = np.arange(1, matches.size + 1)
        hits = np.cumsum(matches)
        first[i] = int(np.argmax(matches > 0)) + 1
        precision = hits / ranks
        if ap_mode == "standard":
            ap[i] = float((precision * matches).sum() / matches.sum())
        else:
            old_precision = np.concatenate([[1.0], precision[:-1]])
            ap[i] = float(((old_precision + precision) / 2 * matches).sum() / matches.sum())
        last = int(np.nonzero(matches)[0].max()) + 1
        inp[i] = matches.sum() / last
    return {"first": first, "ap": ap, "inp": inp}


def matlab_compute_ap(good: set[int], junk: set[int], index: list[int]) -> tuple[float, list[int]]:
    """Line-by-line transcription of the official MARS `compute_AP.m` (trapezoidal AP, 0-based indices)."""
    cmc = [0] * len(index)
    ngood = len(good)
    old_recall, old_precision, ap = 0.0, 1.0, 0.0
    intersect_size, j, good_now, njunk = 0, 0, 0, 0
    for n, item in enumerate(index):
        flag = False
        if item in good:
            for m in range(n - njunk, len(index)):
                cmc[m] = 1
            flag = True
            good_now += 1
        if item in junk:
            njunk += 1
            continue
        if flag:
            intersect_size += 1
        recall = intersect_size / ngood
        precision = intersect_size / (j + 1)
        ap += (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        j += 1
        if good_now == ngood:
            break
    return ap, cmc


def naive_summary(res: dict[str, np.ndarray], num_gallery: int, max_rank: int) -> dict[str, object]:
    """CMC over valid queries (torchreid: queries without a match are skipped), mAP, mINP."""
    valid = res["first"] > 0
    cmc = np.array([(res["first"][valid] <= k).mean() for k in range(1, max_rank + 1)])
    return {"cmc": cmc, "mAP": float(np.nanmean(res["ap"])), "mINP": float(np.nanmean(res["inp"])),
            "num_valid": int(valid.sum())}


def naive_score_norm(dist: np.ndarray, mode: str = "symmetric") -> np.ndarray:
    """Score normalisation with explicit loops over every entry."""
    nq, ng = dist.shape
    out = np.zeros_like(dist, dtype=np.float64)
    for i in range(nq):
        for j in range(ng):
            row, col = dist[i, :], dist[:, j]
            zr = (dist[i, j] - row.mean()) / row.std()
            zc = (dist[i, j] - col.mean()) / col.std()
            out[i, j] = {"row": zr, "column": zc, "symmetric": (zr + zc) / 2}[mode]
    return out


def dense_rerank(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int = 20, k2: int = 6,
                 lambda_value: float = 0.3) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) on dense N x N matrices, straight from the equations.

    Conventions shared with the authors' Python code (and the library): each row of the distance matrix over all
    N = Nq + Ng points is divided by its maximum; neighbour lists N(p, k) hold the k + 1 nearest points including p
    itself; R*(p, k1) adds R(q, round(k1 / 2)) for q in R(p, k1) when |R(q, k1/2) & R(p, k1)| > 2/3 |R(q, k1/2)|
    (eq. 4); V rows are exp(-d) over R* normalised to sum 1 (eq. 7); local query expansion averages the V rows of
    the k2 nearest points (eq. 10); Jaccard distance = 1 - sum(min) / sum(max) (eq. 9); d* = (1 - l) dJ + l d
    (eq. 11). Everything in float64.
    """
    nq = q_g.shape[0]
    d = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64)
    n = d.shape[0]
    d = d / d.max(axis=1, keepdims=True)
    rank = np.argsort(d, axis=1, kind="stable")

    def neighbours(i: int, k: int) -> list[int]:
        return [int(x) for x in rank[i, :k + 1]]

    def reciprocal(i: int, k: int) -> list[int]:
        return [j for j in neighbours(i, k) if i in neighbours(j, k)]

    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        r_i = reciprocal(i, k1)
        r_star = set(r_i)
        for c in r_i:
            r_c = reciprocal(c, half)
            if len(set(r_c) & set(r_i)) > 2 / 3 * len(r_c):
                r_star |= set(r_c)
        members = sorted(r_star)
        w = np.exp(-d[i, members])
        v[i, members] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((nq, n - nq))
    for qi in range(nq):  # one query at a time against every gallery row
        a, b = v[qi][None, :], v[nq:]
        jaccard[qi] = 1 - np.minimum(a, b).sum(axis=1) / np.maximum(a, b).sum(axis=1)
    return (1 - lambda_value) * jaccard + lambda_value * d[:nq, nq:]


def naive_camera_pairs(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
                       g_camids: np.ndarray, q_ids: np.ndarray, g_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Per (query camera, gallery camera) trapezoidal AP and R1, one query and one gallery camera at a time."""
    cams = sorted(set(q_camids.tolist()) | set(g_camids.tolist()))
    c = len(cams)
    ap_sum, r1_sum, count = np.zeros((c, c)), np.zeros((c, c)), np.zeros((c, c))
    for i in range(distmat.shape[0]):
        order = [int(g) for g in np.argsort(distmat[i], kind="stable")]
        a = cams.index(int(q_camids[i]))
        for b, cam in enumerate(cams):
            good, junk = set(), set()
            for g in order:
                if g_pids[g] == -1 or g_ids[g] == q_ids[i]:
                    junk.add(g)
                elif g_pids[g] == q_pids[i]:
                    (good if g_camids[g] == cam else junk).add(g)
            if not good:
                continue
            ap, cmc = matlab_compute_ap(good, junk, order)
            ap_sum[a, b] += ap
            r1_sum[a, b] += cmc[0]
            count[a, b] += 1
    with np.errstate(invalid="ignore"):
        return {"ap": np.where(count > 0, ap_sum / np.maximum(count, 1), np.nan),
                "r1": np.where(count > 0, r1_sum / np.maximum(count, 1), np.nan), "counts": count}
