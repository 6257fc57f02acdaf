"""Center loss (Wen et al., ECCV 2016), eq. 15 of ASA-Net: L_cent = 1/2 sum_i || f_i - c_{y_i} ||_2.

Eq. 15 writes the plain L2 distance; Wen et al. and the AGW / BoT code use its square. Both are offered
(`squared`), averaged over the batch. The centers are learnable and trained by their own SGD optimiser (ASA-Net:
lr 0.5), which is why they live in a module owned by the objective and not in the model.
"""

from __future__ import annotations

import torch
from torch import nn

from reid.errors import ReidError


def center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor,
                squared: bool = False) -> torch.Tensor:
    """features [B, D], labels int64 [B], centers [num_classes, D] -> mean_i 1/2 ||f_i - c_{y_i}||_2 (or squared)."""
    diff = features.float() - centers[labels].float()
    d2 = (diff * diff).sum(dim=1)
    # clamp before sqrt: the gradient of ||.|| is undefined at 0 (a feature sitting on its center)
    dist = d2 if squared else d2.clamp_min(1e-12).sqrt()
    return 0.5 * dist.mean()


class CenterLoss(nn.Module):
    """One learnable center per identity.

    `max_dim` may exceed the feature width: the first D columns serve a D-wide feature. This lets the objective be
    built before the model (the training spine builds it from the loss section alone) while the feature width
    depends on the model's variant; the unused columns receive no gradient and never change.
    """

    def __init__(self, num_classes: int, max_dim: int, squared: bool = False) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, max_dim))
        self.squared = squared

    def forward(self, features: torch.Tensor, labels: torch.Tensor, *, detach_features: bool = False,
                detach_centers: bool = False) -> torch.Tensor:
        """features [B, D], labels [B] -> scalar; the detach flags route the gradient to one side only."""
        d = features.shape[1]
        if d > self.centers.shape[1]:
            raise ReidError(f"center loss: the feature has {d} dims but the centers only {self.centers.shape[1]}; "
                            f"raise loss.center_max_dim to at least {d}")
        if int(labels.max()) >= self.centers.shape[0]:
            raise ReidError(f"center loss: label {int(labels.max())} but only {self.centers.shape[0]} identities")
        f = features.detach() if detach_features else features
        c = self.centers[:, :d]
        return center_loss(f, labels, c.detach() if detach_centers else c, self.squared)
