"""BNNeck (Luo et al., "Bag of Tricks", 2019): a BatchNorm between the metric feature and the ID classifier."""

from __future__ import annotations

import torch
from torch import nn


class BNNeck(nn.Module):
    """f [B, D] -> (f_bn [B, D], logits [B, num_classes]).

    The triplet loss sees `f` (before BN), the ID loss sees the classifier on `f_bn`, and `f_bn` is the test feature.
    The BN has no bias (it would shift every feature equally and only hurt the triplet geometry).
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f_bn = self.bn(f)
        return f_bn, self.classifier(f_bn)
