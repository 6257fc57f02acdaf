"""The recurrent-convolutional network's frame CNN (McLaughlin et al., CVPR 2016), shared by `fcnta` and `astpn`.

Input per frame: 3 colour channels (YUV, each standardised; the pipeline does it when `input_norm="yuv"`) plus,
when flow is used, 2 Lucas-Kanade optical-flow channels in [-1, 1] -> 5 channels, 56x40 crops of 64x48 frames.
CNN: 3 x [5x5 conv, stride 1, zero-pad 4, tanh, 2x2 max-pool] with 16 / 32 / 32 filters; the flattened conv3
output (32 x 10 x 8 for 56x40) goes through an FC to 128 and dropout (0.6 in the official code).
ASTPN (table 1) drops the last max-pool and puts spatial pyramid pooling (eq. 1) after conv3 instead.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from reid.errors import ReidError
from reid.models.layers.frames import per_frame
from reid.models.layers.spp import SpatialPyramidPooling, SPPMode

SpatialMode = Literal["maxpool", "spp"]


def rcn_input(batch: dict[str, torch.Tensor], use_flow: bool) -> torch.Tensor:
    """Stack colour and flow channels: frames [B, T, 3, H, W] (+ flow [B, T, 2, H, W]) -> [B, T, 3 or 5, H, W].

    With `use_flow=False` the flow is ignored even when the pipeline provides it (the colour-only ablation).
    """
    frames = batch["frames"]
    if not use_flow:
        return frames
    flow = batch.get("flow")
    if flow is None:
        raise ReidError("this model uses optical flow (model.use_flow=true) but the batch has no 'flow' tensor; "
                        "expected flow [B, T, 2, H, W] from the data pipeline, or set model.use_flow=false")
    if flow.shape[:2] != frames.shape[:2] or flow.shape[2] != 2 or flow.shape[-2:] != frames.shape[-2:]:
        raise ReidError(f"flow has shape {tuple(flow.shape)}; expected [B, T, 2, H, W] matching frames "
                        f"{tuple(frames.shape)}")
    return torch.cat([frames, flow.to(frames.dtype)], dim=2)


class RCNConv(nn.Module):
    """x: [N, C_in, H, W] -> conv3 maps [N, C3, h, w] (tanh applied; max-pooled after conv3 iff `pool_last`)."""

    def __init__(self, in_channels: int, filters: tuple[int, ...] = (16, 32, 32), pool_last: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for i, f in enumerate(filters):
            layers += [nn.Conv2d(c, f, kernel_size=5, stride=1, padding=4), nn.Tanh()]
            if i < len(filters) - 1 or pool_last:
                layers.append(nn.MaxPool2d(2, 2))
            c = f
        self.net = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C3, h, w) of the conv3 output for an input of height x width (computed, not assumed)."""
        with torch.no_grad():
            out = self.net(torch.zeros(1, self.net[0].in_channels, height, width))
        return tuple(out.shape[1:])  # type: ignore[return-value]


class RCNFrameCNN(nn.Module):
    """Per-frame features: x [B, T, C_in, H, W] -> [B, T, D].

    spatial="maxpool": conv3 -> 2x2 max-pool -> flatten (the RCN CNN). spatial="spp": conv3 -> spatial pyramid
    (ASTPN). `embed_dim` set: then FC -> embed_dim and dropout (D = embed_dim); None: D = the flattened size, for
    models whose next layer is itself the projection (ASTPN's eq. 2 U r_t).
    """

    def __init__(self, in_channels: int, height: int, width: int, filters: tuple[int, ...] = (16, 32, 32),
                 spatial: SpatialMode = "maxpool", spp_levels: tuple[int, ...] = (8, 4, 2, 1),
                 spp_mode: SPPMode = "adaptive", embed_dim: int | None = 128, dropout: float = 0.6) -> None:
        super().__init__()
        self.conv = RCNConv(in_channels, filters, pool_last=spatial == "maxpool")
        c, h, w = self.conv.output_shape(height, width)
        if spatial == "spp":
            self.spp: SpatialPyramidPooling | None = SpatialPyramidPooling(spp_levels, spp_mode)
            flat = self.spp.output_dim(c, h, w)
        else:
            self.spp = None
            flat = c * h * w
        self.flat_dim = flat
        self.fc = nn.Linear(flat, embed_dim) if embed_dim is not None else None
        self.dropout = nn.Dropout(dropout)
        self.out_dim = embed_dim if embed_dim is not None else flat

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C_in, H, W] -> [N, D]."""
        maps = self.conv(x)
        flat = self.spp(maps) if self.spp is not None else maps.flatten(1)
        if self.fc is not None:
            flat = self.fc(flat)
        return self.dropout(flat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(self.frame_features, x)
