"""Run a per-frame 2-D network over clips."""

from __future__ import annotations

import torch
from torch import nn


def per_frame(net: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """frames [B, T, C, H, W] -> net output per frame, reshaped to [B, T, ...]."""
    b, t = frames.shape[:2]
    out = net(frames.flatten(0, 1))
    return out.unflatten(0, (b, t))
