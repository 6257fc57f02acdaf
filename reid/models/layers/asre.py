"""Attribute Salient Region Enhance (ASRE) module of ASA-Net (Chai et al., eqs. 8-10).

Cross attention between an identity feature map X_I (queries) and an attribute feature map X_A (keys, values):

    Att   = Softmax( relu(F_Q(X_I))^T relu(F_K(X_A)) / sqrt(d_k) )      [HW_I, HW_A]   (eq. 8)
    X_V   = split( Att V ),  V = F_V(X_A)                                [C_I, H, W]    (eq. 9)
    M_ASR = F_mask( BN(X_V) )                                            [H, W]         (eq. 9)
    X_out = X_I + alpha * (M_ASR (*) X_I)                                               (eq. 10)

F_Q, F_K, F_V, F_mask are 1x1 convolutions; the softmax runs over the attribute map's positions (how much each
identity pixel responds to each attribute pixel); alpha is learnable, 1.0 at the start. Every frame is attended on
its own (the maps of a clip are stacked along the batch axis).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn


class ASRE(nn.Module):
    """x_id [N, C_I, H, W], x_attr [N, C_A, H_a, W_a] -> (x_out [N, C_I, H, W], mask [N, H, W]).

    Args:
        id_channels: C_I, channels of X_I (C/4 in the paper: F_re / F_ir already reduced X_ID).
        attr_channels: C_A, channels of the attribute map (C/2).
        key_channels: d_k, channels of F_Q / F_K (default C_I; the paper only says "the feature dimension after the
            1x1 convolution").
        alpha: initial value of the learnable alpha (1.0 in the paper).
        mask_activation: "none" as eq. 9 writes it; "sigmoid" bounds the mask to (0, 1) (an option, not the paper).
    """

    def __init__(self, id_channels: int, attr_channels: int, key_channels: int | None = None, alpha: float = 1.0,
                 mask_activation: Literal["none", "sigmoid"] = "none") -> None:
        super().__init__()
        d_k = key_channels or id_channels
        self.d_k = d_k
        self.f_q = nn.Conv2d(id_channels, d_k, 1)
        self.f_k = nn.Conv2d(attr_channels, d_k, 1)
        self.f_v = nn.Conv2d(attr_channels, id_channels, 1)     # V in R^{HW x C/4}: same width as X_I
        self.bn = nn.BatchNorm2d(id_channels)
        self.f_mask = nn.Conv2d(id_channels, 1, 1)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.mask_activation = mask_activation

    def attention(self, x_id: torch.Tensor, x_attr: torch.Tensor) -> torch.Tensor:
        """Eq. 8: [N, HW_I, HW_A], rows sum to 1."""
        q = torch.relu(self.f_q(x_id)).flatten(2).transpose(1, 2)      # [N, HW_I, d_k]
        k = torch.relu(self.f_k(x_attr)).flatten(2)                     # [N, d_k, HW_A]
        return torch.softmax(torch.bmm(q, k) / math.sqrt(self.d_k), dim=-1)

    def salient_mask(self, x_id: torch.Tensor, x_attr: torch.Tensor) -> torch.Tensor:
        """Eq. 9: M_ASR [N, H, W]."""
        n, _, h, w = x_id.shape
        att = self.attention(x_id, x_attr)                              # [N, HW_I, HW_A]
        v = self.f_v(x_attr).flatten(2).transpose(1, 2)                 # [N, HW_A, C_I]
        x_v = torch.bmm(att, v).transpose(1, 2).reshape(n, -1, h, w)    # OP_split: [N, C_I, H, W]
        mask = self.f_mask(self.bn(x_v)).squeeze(1)                     # [N, H, W]
        return torch.sigmoid(mask) if self.mask_activation == "sigmoid" else mask

    def forward(self, x_id: torch.Tensor, x_attr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.salient_mask(x_id, x_attr)
        enhanced = mask.unsqueeze(1) * x_id                             # Hadamard product, broadcast over channels
        return x_id + self.alpha * enhanced, mask
