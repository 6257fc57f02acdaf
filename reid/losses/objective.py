"""The Objective: owns the loss weights and returns every term (timm `task` style: the loss lives outside the model).

A method's objective subclasses `Objective` and implements `terms(outputs, batch) -> {name: unweighted term}`.
`forward` multiplies each term by its weight from `self.weights` and adds them into `loss`; the returned dict holds
`loss` plus every unweighted term, so each one can be logged and the NaN guard can name the culprit.
An Objective may own parameters (e.g. center-loss centers): `own_lr` set means the training step gives them their
own SGD optimiser with that learning rate instead of the model's optimiser (ASA-Net trains centers with lr 0.5).
Its buffers (e.g. a lambda schedule state) are saved in checkpoints with its state_dict.
"""

from __future__ import annotations

import torch
from torch import nn


class Objective(nn.Module):
    own_lr: float | None = None

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__()
        self.weights = dict(weights)

    def terms(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def weight_of(self, name: str) -> float:
        return self.weights.get(name, 1.0)

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = self.terms(outputs, batch)
        total = sum(self.weight_of(k) * v for k, v in terms.items() if self.weight_of(k) != 0.0)
        if not torch.is_tensor(total):
            total = torch.zeros((), device=next(iter(outputs.values())).device)
        return {"loss": total, **terms}
