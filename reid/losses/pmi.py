"""Pose & Motion-Invariant (PMI) triplet loss of ASA-Net (Chai et al., eqs. 11-13), as the paper writes it.

Triplets are mined INSIDE each identity, by the ID-irrelevant (pose and motion) attribute feature:

    AP = argmin_{i != A, same id} || f_ir_attr^i - f_ir_attr^A ||_2      (the most similar pose / motion)  (eq. 11)
    AN = argmax_{i != A, same id} || f_ir_attr^i - f_ir_attr^A ||_2      (the most different pose / motion)
    L_PMI = 1/N sum_A max(d(A, AN) - d(A, AP), 0)                                                         (eq. 12)

with d the cosine distance 1 - cos between FINAL features (eq. 13). The loss asks the final feature of a person to
be at least as close to the same person in a different pose / motion as to the same person in the same one, so the
identity feature becomes invariant to pose and motion. There is no margin. N counts the anchors that have at least
one other tracklet of their identity in the batch (all of them in a P x K batch with K >= 2); the mining itself is
not differentiated (argmin / argmax), the gradient flows through the final features only.
"""

from __future__ import annotations

import torch

from reid.losses.metric import pairwise_distance


def pmi_triplets(attr_features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                              torch.Tensor]:
    """Eq. 11. attr_features (f_ir_attr) [B, Da], labels [B] -> (ap [B], an [B], valid [B] bool).

    ap / an are batch indices; rows where `valid` is False (no other tracklet of the identity) hold the anchor.
    """
    dist = pairwise_distance(attr_features.detach(), metric="euclidean")    # [B, B]
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    same &= ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    valid = same.any(dim=1)
    ap = dist.masked_fill(~same, float("inf")).argmin(dim=1)
    an = dist.masked_fill(~same, float("-inf")).argmax(dim=1)
    anchors = torch.arange(len(labels), device=labels.device)
    return torch.where(valid, ap, anchors), torch.where(valid, an, anchors), valid


def pmi_triplet_loss(final_features: torch.Tensor, attr_features: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    """Eqs. 11-13. final_features (f_final) [B, D], attr_features (f_ir_attr) [B, Da], labels [B] -> scalar."""
    ap, an, valid = pmi_triplets(attr_features, labels)
    if not valid.any():
        return final_features.sum() * 0.0
    cos_dist = pairwise_distance(final_features, metric="cosine")           # eq. 13: 1 - cos
    rows = torch.arange(len(labels), device=labels.device)
    d_pos, d_neg = cos_dist[rows, ap], cos_dist[rows, an]
    return torch.relu(d_neg - d_pos)[valid].mean()
