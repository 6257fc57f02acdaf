"""Identity classification losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy_label_smooth(logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Label-smoothed cross entropy (Szegedy et al. 2016), as BoT / torchreid use it.

    q_i = (1 - eps) * [i == y] + eps / C;  loss = mean_b sum_i -q_i log p_i.
    logits: [B, C]; labels: int64 [B].
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    num_classes = logits.shape[1]
    target = torch.full_like(log_p, epsilon / num_classes)
    target.scatter_(1, labels.unsqueeze(1), 1.0 - epsilon + epsilon / num_classes)
    return -(target * log_p).sum(dim=1).mean()
