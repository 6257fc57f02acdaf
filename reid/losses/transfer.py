"""Losses of the adfta attribute-transfer model (Zhao et al., CVPR 2019, section 3.2).

- BCE (eq. 7) and weighted BCE (eq. 8): the weighted form scales the positive term of attribute i by
  exp((1 - w_i) / sigma^2) and the negative term by exp(w_i / sigma^2), w_i = positive ratio of attribute i in the
  source training set, so that rare attributes are not drowned by common ones.
- MMD (eq. 5) with the Gaussian kernel of eq. 6, k(a, b) = exp(-||a - b||^2 / (2 alpha^2)), alpha = 0.5: the
  (biased) squared maximum mean discrepancy between a source and a target batch of attribute features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def positive_ratio(labels: torch.Tensor) -> torch.Tensor:
    """w_i of eq. 8: the share of positive labels per attribute. labels: {0, 1} [N, L] -> float [L]."""
    return labels.float().mean(dim=0)


def wbce_class_weights(pos_ratio: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive weights exp((1 - w_i) / sigma^2), negative weights exp(w_i / sigma^2)), each [L] (eq. 8)."""
    s2 = float(sigma) ** 2
    return torch.exp((1.0 - pos_ratio) / s2), torch.exp(pos_ratio / s2)


def weighted_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, pos_ratio: torch.Tensor | None = None,
                             sigma: float = 1.0) -> torch.Tensor:
    """Eq. 8 (or eq. 7 when `pos_ratio` is None), averaged over the L attributes and the batch.

    logits: [B, L] (pre-sigmoid); targets: {0, 1} [B, L]; pos_ratio: [L] positive ratios of the source set.
    Computed with log-sigmoid so that confident wrong predictions stay finite.
    """
    y = targets.to(logits.dtype)
    log_p = F.logsigmoid(logits)       # log p_i
    log_1mp = F.logsigmoid(-logits)    # log (1 - p_i)
    if pos_ratio is None:
        per_unit = y * log_p + (1 - y) * log_1mp
    else:
        w_pos, w_neg = wbce_class_weights(pos_ratio.to(logits), sigma)
        per_unit = w_pos * y * log_p + w_neg * (1 - y) * log_1mp
    return -per_unit.mean()


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Eq. 6 for every pair: a [n, D], b [m, D] -> [n, m] with exp(-||a_i - b_j||^2 / (2 alpha^2))."""
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * a @ b.t()
    # the expanded form can dip below zero by rounding; a distance is never negative
    return torch.exp(-sq.clamp_min(0.0) / (2.0 * float(alpha) ** 2))


def mmd_loss(source: torch.Tensor, target: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Eq. 5: mean k(F^s, F^s) + mean k(F^t, F^t) - 2 mean k(F^s, F^t).

    source: [n_s, D], target: [n_t, D] attribute features of one mini-batch from each domain.
    """
    k_ss = gaussian_kernel(source, source, alpha).mean()
    k_tt = gaussian_kernel(target, target, alpha).mean()
    k_st = gaussian_kernel(source, target, alpha).mean()
    return k_ss + k_tt - 2.0 * k_st
