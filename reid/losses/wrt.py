"""Weighted regularised triplet loss (WRT) of the AGW baseline (Ye et al., TPAMI 2021), eq. 14 of ASA-Net.

For anchor i with positives P_i (same identity, j != i) and negatives N_i (other identities):

    w_ij^p = exp(d_ij^p) / sum_{P_i} exp(d^p),     w_ik^n = exp(-d_ik^n) / sum_{N_i} exp(-d^n)
    l_i    = log(1 + exp( sum_j w_ij^p d_ij^p - sum_k w_ik^n d_ik^n ))

No margin: the softmax weights emphasise far positives and close negatives instead of hard mining. Eq. 14 writes a
sum over anchors; like every term of eq. 19 it is averaged over the batch here (Adam is invariant to that scale,
and a batch mean keeps the terms comparable when the batch size changes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reid.losses.metric import pairwise_distance


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the entries of each row where mask is True (zeros elsewhere)."""
    scores = scores.masked_fill(~mask, float("-inf"))
    row_max = scores.amax(dim=1, keepdim=True).clamp_min(-1e30)   # rows without entries stay finite
    e = torch.exp(scores - row_max) * mask
    return e / e.sum(dim=1, keepdim=True).clamp_min(1e-12)


def weighted_regularized_triplet(features: torch.Tensor, labels: torch.Tensor,
                                 metric: str = "euclidean") -> torch.Tensor:
    """Eq. 14, averaged over the anchors that have at least one positive and one negative.

    features [B, D], labels int64 [B] -> scalar.
    """
    dist = pairwise_distance(features, metric=metric)                       # [B, B]
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    w_p = _masked_softmax(dist, pos)
    w_n = _masked_softmax(-dist, neg)
    furthest_pos = (w_p * dist).sum(dim=1)
    closest_neg = (w_n * dist).sum(dim=1)
    valid = pos.any(dim=1) & neg.any(dim=1)
    if not valid.any():
        return features.sum() * 0.0
    return F.softplus(furthest_pos[valid] - closest_neg[valid]).mean()      # softplus(x) = log(1 + exp(x))
