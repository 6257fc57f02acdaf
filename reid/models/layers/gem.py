"""Generalised-mean (GeM) pooling (Radenovic et al., TPAMI 2019), the spatial pooling of the AGW baseline.

GeM(x) = (mean_{h,w} x^p)^(1/p) per channel, with a learnable exponent p: p = 1 is average pooling, p -> inf tends to
max pooling. It is only defined for non-negative inputs (values are clamped at `eps`), so use it on ReLU outputs.
"""

from __future__ import annotations

import torch
from torch import nn


def gem(x: torch.Tensor, p: torch.Tensor | float, eps: float = 1e-6) -> torch.Tensor:
    """x: [N, C, H, W] (non-negative) -> [N, C]."""
    return x.float().clamp_min(eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GeM(nn.Module):
    """[N, C, H, W] -> [N, C]; p is learnable, initialised to `p` (3.0 in AGW)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, self.p, self.eps).to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.3f}, eps={self.eps}"


class AvgPool(nn.Module):
    """[N, C, H, W] -> [N, C] spatial average (the drop-in alternative to GeM)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))
