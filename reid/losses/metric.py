"""Distances and triplet losses shared by the methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None, metric: str = "euclidean") -> torch.Tensor:
    """x [N, D], y [M, D] -> [N, M]. Euclidean (clamped before sqrt for stable gradients) or cosine (1 - cos)."""
    y = x if y is None else y
    x, y = x.float(), y.float()
    if metric == "cosine":
        return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
    d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2.0 * x @ y.t()
    return d2.clamp_min(1e-12).sqrt()


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3,
                       metric: str = "euclidean") -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017).

    For each anchor a: d_ap = max over positives, d_an = min over negatives; loss = mean_a max(0, m + d_ap - d_an).
    features [B, D], labels [B] (a P x K batch so every anchor has a positive and a negative).
    """
    dist = pairwise_distance(features, metric=metric)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    valid = torch.isfinite(d_ap) & torch.isfinite(d_an)
    if not valid.any():
        return features.sum() * 0.0
    return F.relu(margin + d_ap[valid] - d_an[valid]).mean()
