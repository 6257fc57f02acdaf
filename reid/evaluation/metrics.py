"""CMC, mAP and mINP from a query x gallery distance matrix, vectorised over blocks of queries.

Definitions (as torchreid `metrics/rank.py` and fast-reid `evaluation/rank.py` compute them):
- A gallery item is *ignored* for a query when it has the query's identity and camera (this removes the query
  itself when it is in the gallery) or when it is MARS junk (pid -1). Ignored items are taken out of the ranked list
  before any rank is counted. Distractors (pid 0) are ordinary negatives.
- CMC(k): fraction of queries whose first match is within the first k non-ignored items.
- AP ("standard", non-interpolated): mean over the matches of precision at the match's rank.
- AP ("trapezoid", official MARS Matlab `compute_AP.m`): sum over the matches of
  (recall - old_recall) * (old_precision + precision) / 2, where old_precision is the precision at the previous
  non-ignored item (1.0 before the first one).
- INP (fast-reid): number of matches / rank of the hardest (last) match.
- Ties in distance are broken by gallery order (a stable sort), so results are deterministic.

Queries with no valid match are counted in `num_queries_without_match`. With `no_match="skip"` (torchreid) they
are left out of every average; with `no_match="zero"` (official MARS Matlab) they count as AP 0 / INP 0 / never hit.

The ranking is never a Python loop over queries: a block of queries is sorted at once; then only the few "special"
items per query (same identity, or junk) are located in the sorted order, and AP / CMC / INP follow from their
positions with segmented cumulative sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from reid.errors import ReidError

APMode = Literal["standard", "trapezoid"]
NoMatch = Literal["skip", "zero"]
ArrayLike = np.ndarray | torch.Tensor

_BYTES_PER_ELEMENT = 40  # keys + sorted keys + order (int64) + a few bool masks, per distance entry of a block


@dataclass(frozen=True)
class RankResult:
    """Ranking metrics of one query x gallery evaluation.

    Attributes:
        cmc: [Ng] float64, cmc[k - 1] = CMC at rank k (over the queries counted, see `no_match`).
        mAP, mINP: means over the queries counted (NaN when none is).
        ap, inp: [Nq] float64 per query; NaN for a query without any valid match.
        first_match_rank: [Nq] int64, 1-based rank of the first match among non-ignored items; 0 = no match.
        num_queries, num_valid_queries, num_queries_without_match: counts (valid + without = all).
        ap_mode, no_match: how AP was computed and how queries without a match were treated.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    ap: np.ndarray
    inp: np.ndarray
    first_match_rank: np.ndarray
    num_queries: int
    num_valid_queries: int
    num_queries_without_match: int
    ap_mode: str = "standard"
    no_match: str = "skip"

    def rank(self, k: int) -> float:
        """CMC at rank k (1-based); ranks past the gallery size give the last value."""
        if k < 1:
            raise ReidError(f"CMC rank must be >= 1, got {k}")
        if self.cmc.size == 0:
            return float("nan")
        return float(self.cmc[min(k, self.cmc.size) - 1])

    def summary(self, ranks: tuple[int, ...] = (1, 5, 10, 20)) -> dict[str, float]:
        out: dict[str, float] = {f"rank{k}": self.rank(k) for k in ranks}
        out.update(mAP=self.mAP, mINP=self.mINP, num_queries=float(self.num_queries),
                   num_valid_queries=float(self.num_valid_queries),
                   num_queries_without_match=float(self.num_queries_without_match))
        return out


def as_tensor(x: ArrayLike, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if dtype is not None:
        t = t.to(dtype)
    if not isinstance(x, torch.Tensor) and t.dim() == 0:
        raise ReidError(f"{name} must be an array, got a scalar")
    return t


def _stable_order(d: torch.Tensor) -> torch.Tensor:
    """Per-row argsort of d [B, Ng], ties broken by column index. Returns int64 [B, Ng].

    float32 rows are sorted as int64 keys (order-preserving float bits << 32 | column), which numpy sorts much faster
    than a stable float argsort; other dtypes fall back to a stable sort.
    """
    if d.dtype != torch.float32 or d.shape[1] >= 2**31:
        return torch.sort(d, dim=1, stable=True).indices
    d = d + 0.0  # a copy, and -0.0 -> +0.0 so that equal values give equal keys
    if d.device.type != "cpu":
        return _key_order_torch(d)
    a = d.numpy()
    key = a.view(np.int32).astype(np.int64)  # sign-extended float bits: order-preserving for values >= 0
    if bool((a < 0).any()):  # negative floats order backwards by their magnitude bits: flip those bits
        key ^= (key >> 31) & 0x7FFFFFFF
    key <<= 32
    key |= np.arange(a.shape[1], dtype=np.int64)
    key.sort(axis=1)
    key &= 0xFFFFFFFF
    return torch.from_numpy(key)


def _key_order_torch(d: torch.Tensor) -> torch.Tensor:
    """The same (value, index) key sort in torch ops, for accelerators. d: float32 [B, Ng] without -0.0."""
    bits = d.contiguous().view(torch.int32)
    key = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64) << 32
    key |= torch.arange(d.shape[1], device=d.device, dtype=torch.int64)
    return torch.sort(key, dim=1).values & 0xFFFFFFFF


@dataclass
class Specials:
    """Items of a block that are a match or ignored, in ranked order (row-major, ascending position)."""

    rows: torch.Tensor  # [S] query row within the block
    cols: torch.Tensor  # [S] gallery column
    pos: torch.Tensor  # [S] 0-based position in the row's full ranking


def locate_specials(d: torch.Tensor, q_pids: torch.Tensor, g_pids: torch.Tensor) -> Specials:
    order = _stable_order(d)
    special = (q_pids[:, None] == g_pids[None, :]) | (g_pids == -1)[None, :]
    rows, pos = special.gather(1, order).nonzero(as_tuple=True)
    return Specials(rows=rows, cols=order[rows, pos], pos=pos)


def segment_stats(rows: torch.Tensor, pos: torch.Tensor, match: torch.Tensor, ignored: torch.Tensor,
                  num_rows: int) -> dict[str, torch.Tensor]:
    """Per-row AP / INP / first-match rank from the ranked positions of the special items.

    rows [S] (non-decreasing), pos [S] (increasing within a row), match / ignored [S] bool. Every ignored item of a
    row must be present. Returns float64 / int64 tensors of length num_rows: n_good, ap, ap_trapezoid, first, last
    (1-based ranks among non-ignored items; 0 when no match).
    """
    dev = rows.device
    counts = torch.bincount(rows, minlength=num_rows)
    starts = torch.cumsum(counts, 0) - counts
    first_of_row = starts[rows]
    ign = ignored.to(torch.int64)
    ign_excl = torch.cumsum(ign, 0) - ign
    ign_before = ign_excl - ign_excl[first_of_row]
    mt = match.to(torch.int64)
    m_incl = torch.cumsum(mt, 0)
    m_excl_start = (m_incl - mt)[first_of_row]
    j = (m_incl - m_excl_start)[match].to(torch.float64)  # 1-based ordinal of the match
    r = (pos - ign_before + 1)[match]  # 1-based rank among non-ignored items
    mrows = rows[match]
    rf = r.to(torch.float64)
    n_good = torch.bincount(mrows, minlength=num_rows).to(torch.float64)
    prec_sum = torch.zeros(num_rows, dtype=torch.float64, device=dev).index_add_(0, mrows, j / rf)
    old_prec = torch.where(r > 1, (j - 1) / (rf - 1).clamp(min=1), torch.ones_like(rf))
    trap_sum = torch.zeros(num_rows, dtype=torch.float64, device=dev).index_add_(0, mrows, (old_prec + j / rf) / 2)
    first = torch.zeros(num_rows, dtype=torch.int64, device=dev).scatter_reduce_(
        0, mrows, r, reduce="amin", include_self=False)
    last = torch.zeros(num_rows, dtype=torch.int64, device=dev).scatter_reduce_(
        0, mrows, r, reduce="amax", include_self=False)
    safe = n_good.clamp(min=1)
    return {"n_good": n_good, "ap": prec_sum / safe, "ap_trapezoid": trap_sum / safe, "first": first, "last": last}


def block_rows_for(num_gallery: int, block_bytes: int) -> int:
    return max(1, block_bytes // max(1, num_gallery * _BYTES_PER_ELEMENT))


def _check_inputs(distmat: torch.Tensor, q_pids: torch.Tensor, g_pids: torch.Tensor, q_camids: torch.Tensor,
                  g_camids: torch.Tensor) -> None:
    if distmat.dim() != 2:
        raise ReidError(f"distance matrix must be 2-D [num_query, num_gallery], got shape {tuple(distmat.shape)}")
    nq, ng = distmat.shape
    for name, arr, n in (("q_pids", q_pids, nq), ("q_camids", q_camids, nq), ("g_pids", g_pids, ng),
                         ("g_camids", g_camids, ng)):
        if arr.dim() != 1 or arr.shape[0] != n:
            raise ReidError(f"{name} must have shape [{n}] to match the distance matrix {tuple(distmat.shape)}, "
                            f"got {tuple(arr.shape)}")
    if distmat.is_floating_point() and bool(torch.isnan(distmat).any()):
        raise ReidError("distance matrix contains NaN; check the features (a zero vector under cosine distance?)")
    if bool((q_pids == -1).any()):
        raise ReidError("a query has pid -1 (MARS junk); junk tracklets cannot be queries")


def evaluate_ranking(distmat: ArrayLike, q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike,
                     g_camids: ArrayLike, *, ap_mode: APMode = "standard", no_match: NoMatch = "skip",
                     block_bytes: int = 256 << 20, device: str | torch.device | None = None) -> RankResult:
    """CMC, mAP and mINP of a distance matrix (smaller = more similar).

    Args:
        distmat: [Nq, Ng] numpy array or torch tensor (a CUDA tensor is ranked on its device).
        q_pids, g_pids, q_camids, g_camids: [Nq] / [Ng] integer identities and cameras.
        ap_mode: "standard" (non-interpolated, torchreid / fast-reid) or "trapezoid" (official MARS Matlab).
        no_match: "skip" leaves queries without a valid match out of every average; "zero" counts them as misses.
        block_bytes: memory budget of one block of queries (bounds peak memory on MARS-sized problems).
        device: where to rank; default: the distance matrix's device.
    """
    if ap_mode not in ("standard", "trapezoid"):
        raise ReidError(f"ap_mode must be 'standard' or 'trapezoid', got {ap_mode!r}")
    if no_match not in ("skip", "zero"):
        raise ReidError(f"no_match must be 'skip' or 'zero', got {no_match!r}")
    d_all = as_tensor(distmat, "distmat")
    dev = torch.device(device) if device is not None else d_all.device
    if not d_all.is_floating_point():
        d_all = d_all.to(torch.float64)
    elif d_all.dtype in (torch.float16, torch.bfloat16):
        d_all = d_all.to(torch.float32)
    qp, gp = as_tensor(q_pids, "q_pids", torch.int64), as_tensor(g_pids, "g_pids", torch.int64)
    qc, gc = as_tensor(q_camids, "q_camids", torch.int64), as_tensor(g_camids, "g_camids", torch.int64)
    _check_inputs(d_all, qp, gp, qc, gc)
    nq, ng = d_all.shape
    qp, gp, qc, gc = qp.to(dev), gp.to(dev), qc.to(dev), gc.to(dev)

    ap = np.full(nq, np.nan)
    inp = np.full(nq, np.nan)
    first_rank = np.zeros(nq, dtype=np.int64)
    step = block_rows_for(ng, block_bytes)
    for s in range(0, nq, step):
        e = min(nq, s + step)
        sp = locate_specials(d_all[s:e].to(dev), qp[s:e], gp)
        gps, bqp = gp[sp.cols], qp[s:e][sp.rows]
        same = gps == bqp
        ignored = (gps == -1) | (same & (gc[sp.cols] == qc[s:e][sp.rows]))
        st = segment_stats(sp.rows, sp.pos, same & ~ignored, ignored, e - s)
        has = (st["n_good"] > 0).cpu().numpy()
        ap_b = st["ap" if ap_mode == "standard" else "ap_trapezoid"].cpu().numpy()
        inp_b = (st["n_good"] / st["last"].clamp(min=1).to(torch.float64)).cpu().numpy()
        ap[s:e] = np.where(has, ap_b, np.nan)
        inp[s:e] = np.where(has, inp_b, np.nan)
        first_rank[s:e] = st["first"].cpu().numpy()
    return _finish(ap, inp, first_rank, ng, ap_mode, no_match)


def _finish(ap: np.ndarray, inp: np.ndarray, first_rank: np.ndarray, ng: int, ap_mode: str,
            no_match: str) -> RankResult:
    valid = first_rank > 0
    nv, nq = int(valid.sum()), int(first_rank.size)
    denom = nv if no_match == "skip" else nq
    hist = np.bincount(first_rank[valid] - 1, minlength=ng)[:ng]
    cmc = np.cumsum(hist) / denom if denom else np.full(ng, np.nan)
    mean_ap = float(np.nansum(ap) / denom) if denom else float("nan")
    mean_inp = float(np.nansum(inp) / denom) if denom else float("nan")
    return RankResult(cmc=cmc.astype(np.float64), mAP=mean_ap, mINP=mean_inp, ap=ap, inp=inp,
                      first_match_rank=first_rank, num_queries=nq, num_valid_queries=nv,
                      num_queries_without_match=nq - nv, ap_mode=ap_mode, no_match=no_match)
