"""Non-local block (Wang et al., CVPR 2018), embedded dot-product form, as the AGW baseline inserts it into ResNet.

z = x + BN(W_z(y)),  y_i = (1 / N) sum_j (theta(x_i) . phi(x_j)) g(x_j),  N = H * W positions of one frame.
The output BN starts at zero (gamma = beta = 0) so that a block inserted into a pretrained ResNet begins as the
identity map and does not disturb the ImageNet features.
"""

from __future__ import annotations

import torch
from torch import nn


class NonLocal2d(nn.Module):
    """[N, C, H, W] -> [N, C, H, W]; attention over the H * W positions of each image (frame) separately."""

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        inter = max(1, channels // reduction)
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.w_z = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.w_z[1].weight)
        nn.init.zeros_(self.w_z[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)          # [N, HW, C']
        phi = self.phi(x).flatten(2)                               # [N, C', HW]
        g = self.g(x).flatten(2).transpose(1, 2)                   # [N, HW, C']
        affinity = torch.bmm(theta, phi) / (h * w)                 # dot product, normalised by N (not softmax)
        y = torch.bmm(affinity, g).transpose(1, 2).reshape(n, -1, h, w)
        return x + self.w_z(y)


def with_non_local(stage: nn.Sequential, channels: int, count: int) -> nn.Sequential:
    """A ResNet stage with a non-local block after each of its last `count` residual blocks (AGW: 2 in layer2,
    3 in layer3). `count` is clipped to the number of blocks (ResNet-18 stages have 2)."""
    blocks = list(stage)
    count = min(count, len(blocks))
    out: list[nn.Module] = []
    for i, block in enumerate(blocks):
        out.append(block)
        if i >= len(blocks) - count:
            out.append(NonLocal2d(channels))
    return nn.Sequential(*out)
