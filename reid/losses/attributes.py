"""Attribute losses shared by adfta and asanet."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reid.attribute_schema import AttributeGroup, AttributeSchema, group_targets


def masked_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross entropy over the labelled units only.

    logits, targets, mask: [B, W]; mask 0 marks a missing label (attribute value -1 in the manifest).
    """
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    denom = mask.sum().clamp_min(1.0)
    return (loss * mask).sum() / denom


def group_targets_tensor(attributes: torch.Tensor, group: AttributeGroup, schema: AttributeSchema
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch wrapper of `reid.data.attributes.group_targets`: int [B, num_columns] -> (targets, mask) [B, width]."""
    targets, mask = group_targets(attributes.detach().cpu().numpy(), group, schema)
    return (torch.from_numpy(targets).to(attributes.device), torch.from_numpy(mask).to(attributes.device))
