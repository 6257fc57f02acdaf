"""Spatial pyramid max pooling (He et al. 2014), as used by ASTPN (Xu et al. ICCV 2017, section 3.1, eq. 1).

Two bin rules, because eq. 1 and the official code disagree for map sizes that are not multiples of the level:

- "adaptive" (default): bin i of a level with m bins covers [floor(i*w/m), ceil((i+1)*w/m)). This is what the
  official ASTPN code runs (imagine-nn's `inn.SpatialPyramidPooling` is built on `SpatialAdaptiveMaxPooling`), it
  always gives exactly m x m bins, so the image-level vector has L = c * sum_j m_j^2 entries as the paper states
  (32 * (64 + 16 + 4 + 1) = 2720 for the RCN conv3 maps of a 56x40 crop).
- "paper": eq. 1 taken literally: window ceil(w/m), stride floor(w/m), no padding. For the 21x17 conv3 maps of a
  56x40 crop the 8x8 level then yields 10x8 bins (the window/stride rule only gives m bins when m divides w or the
  remainder is small), so L differs; `output_dim` reports the real size.

ONNX export: the legacy exporter has no form of `adaptive_max_pool2d` unless the map size divides into the bins.
While exporting (`torch.onnx.is_in_onnx_export()`), "adaptive" runs `adaptive_max_pool2d_bins` instead: the same bins
as explicit slices and maxima, for the map size of the traced input (static in `reid export`'s graph: frames are
resized to the run's size first). A maximum is exact, so the values are identical; training keeps the native op
(faster, and its gradient goes to one element of a tie rather than being split).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

SPPMode = Literal["adaptive", "paper"]


def paper_bins(size: int, m: int) -> int:
    """Number of windows eq. 1 produces along a side of `size` for a level with m bins."""
    if size < m:
        raise ValueError(f"spatial pyramid level {m} needs a feature map of at least {m} cells, got {size}")
    win, stride = math.ceil(size / m), size // m
    return (size - win) // stride + 1


def adaptive_bins(size: int, m: int) -> list[tuple[int, int]]:
    """The bins of `adaptive_max_pool2d` along a side of `size` cells: [floor(i*size/m), ceil((i+1)*size/m))."""
    return [((i * size) // m, -((-(i + 1) * size) // m)) for i in range(m)]


def adaptive_max_pool2d_bins(x: torch.Tensor, m: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, m, m], equal to `F.adaptive_max_pool2d(x, m)` (same bins, max is exact).

    Separable: the max over a rectangle is the max over its rows' maxima, so rows are pooled first (m slices),
    then columns (m slices). H, W are read as Python ints: fixed in a traced / exported graph.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    rows = torch.stack([x[..., a:b, :].amax(dim=-2) for a, b in adaptive_bins(h, m)], dim=-2)     # [N, C, m, W]
    return torch.stack([rows[..., a:b].amax(dim=-1) for a, b in adaptive_bins(w, m)], dim=-1)     # [N, C, m, m]


class SpatialPyramidPooling(nn.Module):
    """x: [N, C, H, W] -> [N, C * sum_j (bins_h_j * bins_w_j)], levels concatenated in the given order (eq. 1).

    Within a level the flattening order is channel-major (C, bins_h, bins_w), like a reshape of the pooled map.
    """

    def __init__(self, levels: tuple[int, ...] = (8, 4, 2, 1), mode: SPPMode = "adaptive") -> None:
        super().__init__()
        if not levels or any(m < 1 for m in levels):
            raise ValueError(f"spatial pyramid levels must be positive integers, got {levels}")
        self.levels = tuple(int(m) for m in levels)
        self.mode = mode

    def level_shape(self, height: int, width: int, m: int) -> tuple[int, int]:
        if self.mode == "adaptive":
            return m, m
        return paper_bins(height, m), paper_bins(width, m)

    def output_dim(self, channels: int, height: int, width: int) -> int:
        """L of eq. 1 for a [channels, height, width] feature map."""
        return channels * sum(h * w for h, w in (self.level_shape(height, width, m) for m in self.levels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        parts = []
        for m in self.levels:
            if self.mode == "adaptive":
                exporting = torch.onnx.is_in_onnx_export()
                pooled = adaptive_max_pool2d_bins(x, m) if exporting else F.adaptive_max_pool2d(x, m)
            else:
                paper_bins(h, m), paper_bins(w, m)  # raises a clear error for maps smaller than the level
                win = (math.ceil(h / m), math.ceil(w / m))
                stride = (max(h // m, 1), max(w // m, 1))
                pooled = F.max_pool2d(x, kernel_size=win, stride=stride)
            parts.append(pooled.flatten(1))
        return torch.cat(parts, dim=1)
