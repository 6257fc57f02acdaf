"""Temporal attention pooling, TAP (Jones & Rambhatla, BMVC 2019, section 3.3, eqs. 7-9)."""

from __future__ import annotations

import torch
from torch import nn


class TemporalAttentionNet(nn.Module):
    """The fully convolutional quality net N of eq. 8, followed by the sigmoid of eq. 9.

    3x3 conv (C -> hidden) -> BN -> ReLU -> 3x3 conv (hidden -> hidden), both keeping the spatial size, then the
    mean over channels and space gives one logit per frame. The paper does not give the hidden width (decision:
    a parameter, 256 by default).

    forward: maps [B, T, C, h, w] -> weights [B, T] in [0, 1]. Works for any T: every frame is scored on its own.
    """

    def __init__(self, in_channels: int, hidden: int = 256) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1)

    def logits(self, maps: torch.Tensor) -> torch.Tensor:
        """Eq. 8: maps [B, T, C, h, w] -> fbar [B, T] (before the sigmoid)."""
        b, t = maps.shape[:2]
        x = self.conv2(self.relu(self.bn(self.conv1(maps.flatten(0, 1)))))
        return x.mean(dim=(1, 2, 3)).view(b, t)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(maps))  # eq. 9


def weighted_temporal_sum(frame_features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 7, as written (no renormalisation of the weights): f_video = sum_t w_t f_t.

    frame_features: [B, T, D]; weights: [B, T] -> [B, D].
    """
    return torch.einsum("bt,btd->bd", weights.to(frame_features.dtype), frame_features)
