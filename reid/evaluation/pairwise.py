"""Evaluation of models that score query-gallery *pairs* rather than embedding each tracklet on its own.

ASTPN's attentive temporal pooling (Xu et al., ICCV 2017, eqs. 6-9) weighs the frames of a sequence by their
attention against the *other* sequence of the pair, so there is no per-tracklet embedding to compare. The model
computes its per-sequence states once ([N, T, D], e.g. the RNN outputs), and a `PairwiseScorer` turns any block of
query states x gallery states into distances. `pairwise_distance_matrix` visits every query-gallery pair in blocks
whose size is chosen from a memory budget.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch

from reid.errors import ReidError
from reid.progress import bar as progress_bar


@runtime_checkable
class PairwiseScorer(Protocol):
    """A model part that scores pairs of sequences.

    `pair_distance(q [Nq, T, D], g [Ng, T', D], q_mask [Nq, T] bool | None, g_mask [Ng, T'] bool | None)` returns
    distances [Nq, Ng] (smaller = same person). Masks mark the valid time steps of variable-length sequences
    (True = valid; None = all valid). It must be a pure function of its inputs (no state across calls), so that
    any blocking gives the same result.
    """

    def pair_distance(self, q: torch.Tensor, g: torch.Tensor, q_mask: torch.Tensor | None,
                      g_mask: torch.Tensor | None) -> torch.Tensor: ...


def default_pair_bytes(tq: int, tg: int, dim: int, dtype_bytes: int = 4) -> int:
    """Working memory of one pair for an attention-pooling scorer: the Tq x Tg attention matrix, two pooled
    [D] vectors and the [T, D] projections, with a x4 margin for autograd-free temporaries."""
    return 4 * dtype_bytes * (tq * tg + (tq + tg) * dim + 2 * dim)


def block_shape(num_query: int, num_gallery: int, pair_bytes: int, budget_bytes: int) -> tuple[int, int]:
    """(query rows, gallery columns) per block so that rows x cols x pair_bytes <= budget (at least 1 x 1)."""
    pairs = max(1, budget_bytes // max(1, pair_bytes))
    cols = max(1, min(num_gallery, pairs))
    rows = max(1, min(num_query, pairs // cols))
    if rows == num_query and cols < num_gallery:  # keep blocks square-ish for better reuse of the query states
        side = max(1, int(math.isqrt(pairs)))
        rows, cols = min(num_query, side), min(num_gallery, max(1, pairs // min(num_query, side)))
    return rows, cols


def pairwise_distance_matrix(scorer: PairwiseScorer, q: torch.Tensor, g: torch.Tensor,
                             q_mask: torch.Tensor | None = None, g_mask: torch.Tensor | None = None, *,
                             budget_bytes: int = 256 << 20, pair_bytes: int | None = None,
                             device: str | torch.device | None = None) -> torch.Tensor:
    """Distances [Nq, Ng] (float32, on the CPU) of every query-gallery pair, in memory-bounded blocks.

    q [Nq, T, D], g [Ng, T', D] are the per-sequence states (computed once); blocks are moved to `device` (default:
    q's device) for scoring. `pair_bytes` overrides the per-pair memory estimate (`default_pair_bytes`).
    """
    if not isinstance(scorer, PairwiseScorer):
        raise ReidError(f"{type(scorer).__name__} has no pair_distance(q, g, q_mask, g_mask) method")
    if q.dim() != 3 or g.dim() != 3 or q.shape[2] != g.shape[2]:
        raise ReidError(f"pairwise states must be [N, T, D] with the same D, got {tuple(q.shape)} and "
                        f"{tuple(g.shape)}")
    for name, m, x in (("q_mask", q_mask, q), ("g_mask", g_mask, g)):
        if m is not None and m.shape != x.shape[:2]:
            raise ReidError(f"{name} must be [N, T] = {tuple(x.shape[:2])}, got {tuple(m.shape)}")
    dev = torch.device(device) if device is not None else q.device
    nq, ng = q.shape[0], g.shape[0]
    pb = pair_bytes if pair_bytes is not None else default_pair_bytes(q.shape[1], g.shape[1], q.shape[2],
                                                                        q.element_size())
    rows, cols = block_shape(nq, ng, pb, budget_bytes)
    out = torch.empty(nq, ng, dtype=torch.float32)
    blocks = [(s, t) for s in range(0, nq, rows) for t in range(0, ng, cols)]
    with torch.no_grad():
        for s, t in progress_bar(blocks, desc="pairwise", unit="blocks", disable=len(blocks) < 2):
            qb = q[s:s + rows].to(dev)
            gb = g[t:t + cols].to(dev)
            qm = q_mask[s:s + rows].to(dev) if q_mask is not None else None
            gm = g_mask[t:t + cols].to(dev) if g_mask is not None else None
            d = scorer.pair_distance(qb, gb, qm, gm)
            if d.shape != (qb.shape[0], gb.shape[0]):
                raise ReidError(f"pair_distance returned shape {tuple(d.shape)} for a "
                                f"{qb.shape[0]} x {gb.shape[0]} block")
            out[s:s + rows, t:t + cols] = d.float().cpu()
    return out
