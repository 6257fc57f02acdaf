"""The base of every method's model: timm's split between the embedding and the training heads."""

from __future__ import annotations

import torch
from torch import nn

from reid.spec import Batch, ModelOutputs


class ReidModule(nn.Module):
    """A re-ID model: `forward(batch)` -> outputs for the objective (at least `features` [B, D]);
    `forward_features(batch)` -> the test embedding [B, D], all that evaluation and inference call.

    The default `forward_features` reads `features` off the full forward (the heads run too, their outputs are
    dropped); a method whose heads cost something overrides it to stop before them.
    """

    def forward(self, batch: Batch) -> ModelOutputs:  # pragma: no cover - every method defines it
        raise NotImplementedError

    def forward_features(self, batch: Batch) -> torch.Tensor:
        """batch -> embeddings [B, D] (the same tensor as `forward(batch)["features"]`)."""
        return self.forward(batch)["features"]
