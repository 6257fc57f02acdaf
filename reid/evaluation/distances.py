"""Distances between query and gallery embeddings, computed in row blocks so that only the output is full-size."""

from __future__ import annotations

from typing import Literal

import torch

from reid.errors import ReidError

Metric = Literal["euclidean", "sqeuclidean", "cosine"]
METRICS: tuple[str, ...] = ("euclidean", "sqeuclidean", "cosine")


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, metric: Metric = "euclidean",
                      block_rows: int = 4096) -> torch.Tensor:
    """Distance matrix between rows of x [N, D] and y [M, D] -> [N, M] float32 on x's device.

    euclidean: ||x - y||; sqeuclidean: ||x - y||^2 (what torchreid calls "euclidean"); cosine: 1 - cos(x, y).
    Computed through the Gram matrix (||x||^2 + ||y||^2 - 2 x.y, clamped at 0) in blocks of `block_rows` rows.
    """
    if metric not in METRICS:
        raise ReidError(f"unknown distance metric '{metric}'; expected one of {METRICS}")
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ReidError(f"features must be [N, D] and [M, D] with the same D, got {tuple(x.shape)} and "
                        f"{tuple(y.shape)}")
    x = x.float()
    y = y.float().to(x.device)
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
        y = torch.nn.functional.normalize(y, dim=1)
    out = torch.empty(x.shape[0], y.shape[0], dtype=torch.float32, device=x.device)
    y2 = (y * y).sum(1)
    for s in range(0, x.shape[0], block_rows):
        xb = x[s:s + block_rows]
        if metric == "cosine":
            out[s:s + block_rows] = 1.0 - xb @ y.T
            continue
        d = ((xb * xb).sum(1, keepdim=True) + y2[None, :]).addmm_(xb, y.T, alpha=-2.0).clamp_(min=0.0)
        out[s:s + block_rows] = d.sqrt_() if metric == "euclidean" else d
    return out
